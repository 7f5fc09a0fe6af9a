"""The `miner` command line: parses arguments and wires the parts together; no logic of its own."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from types import FrameType

import redis

from miner import __version__, bench, chain, config, pow, worker

EXIT_FAILURE = 1
# `miner demo` measures this machine this long, then picks a DIFFICULTY giving blocks this often.
DEMO_MEASURE_SECONDS = 0.5
DEMO_BLOCK_SECONDS = 0.5
EXIT_USAGE = 2


class UsageError(Exception):
    """A bad argument or setting: reported as one line, exit code 2."""


class Unreachable(Exception):
    """Redis did not answer: reported as one line naming the address, exit code 2."""


def load_settings(overrides: dict[str, str | None] | None = None) -> config.Settings:
    """Settings from the environment, with flags given on the command line taking precedence."""
    given = {name: value for name, value in (overrides or {}).items() if value is not None}
    try:
        return config.load(overrides=given)
    except config.ConfigError as error:
        raise UsageError(f"miner: {error}") from None


def _credentials_refused(settings: config.Settings, error: Exception) -> str:
    return (
        f"miner: Redis at {chain.redacted(settings.redis_url)} refused the credentials "
        f"(REDIS_PASSWORD or the user in REDIS_URL): {error}"
    )


def _client(settings: config.Settings, *, must_answer: bool) -> redis.Redis:
    """A client for the configured Redis, checked with one PING.

    Wrong credentials are a setting to fix: one line, exit 2. An unreachable server is
    Unreachable (one line, password masked) when `must_answer`; otherwise the caller waits it
    out, as a worker does.
    """
    client = chain.connect(
        settings.redis_url, ca_cert=settings.redis_ca_cert, cluster=settings.redis_cluster
    )
    try:
        client.ping()
    except redis.AuthenticationError as error:
        raise UsageError(_credentials_refused(settings, error)) from None
    except worker.REDIS_ERRORS as error:
        if must_answer:
            raise Unreachable(
                f"miner: cannot reach Redis at {chain.redacted(settings.redis_url)}: {error}"
            ) from None
    return client


def open_chain(settings: config.Settings) -> chain.Chain:
    """A connected chain store; Unreachable if Redis does not answer."""
    return chain.Chain(_client(settings, must_answer=True), settings.chain)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what is wrong and what is allowed), exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds > 0, got {text!r}"
        ) from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def _whole_number(low: int, allowed: str) -> Callable[[str], int]:
    """An argparse type for an int >= `low`; a refusal says what is allowed and what was given."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}")
        return value

    return parse


_positive_int = _whole_number(1, "a whole number >= 1")
_count = _whole_number(0, "a whole number >= 0")
_entry_id = _whole_number(1, "an entry id (a whole number >= 1)")


def _open(args: argparse.Namespace) -> chain.Chain:
    """The chain named by --chain, or by CHAIN, on the worker's Redis."""
    return open_chain(load_settings({"CHAIN": args.chain}))


def _iso_time(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """Columns padded to their widest cell; numbers right-aligned, text left-aligned."""
    cells = [[str(value) for value in row] for row in rows]
    widths = [max([len(name)] + [len(row[i]) for row in cells]) for i, name in enumerate(header)]
    numeric = [
        bool(rows) and all(isinstance(row[i], int) for row in rows) for i in range(len(header))
    ]

    def line(values: Sequence[str]) -> str:
        padded = (
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(values, widths, numeric, strict=True)
        )
        return "  ".join(padded).rstrip()

    return [line(header), *(line(row) for row in cells)]


def _cmd_chain(args: argparse.Namespace) -> int:
    store = _open(args)
    blocks = store.last(args.last)
    if not blocks:
        raise chain.ChainError(f"chain {store.name} has no genesis block yet")
    if args.json:
        print(json.dumps([block.as_dict() for block in blocks], ensure_ascii=False))
        return 0
    rows = [
        (
            block.height,
            block.hash_hex[:16],
            block.miner,
            block.header.nonce,
            f"{block.header.bits:08x}",
            _iso_time(block.header.time),
            len(block.entries),
        )
        for block in blocks
    ]
    header = ("height", "hash", "miner", "nonce", "bits", "time (UTC)", "entries")
    print("\n".join(_table(header, rows)))
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    store = _open(args)
    verdict = store.verify()
    if verdict.error is None:
        assert verdict.tip_hash is not None
        print(
            f"chain {store.name}: valid, height {verdict.height} ({verdict.height + 1} blocks), "
            f"tip {verdict.tip_hash[:16]}"
        )
        return 0
    error = verdict.error
    trusted = f"; valid up to height {verdict.height}" if verdict.height >= 0 else ""
    print(
        f"chain {store.name}: invalid at height {error.height}, rule {error.rule!r}: "
        f"{error.detail}{trusted}"
    )
    return EXIT_FAILURE


def _stdin_entries() -> list[str]:
    """Standard input, one entry per line: the line break (LF or CRLF) is not part of the entry,
    and the last line counts whether or not a line break ends it. Lines are read as bytes so that
    the chain's own check decides what is text; a refusal names the line.
    """
    data = sys.stdin.buffer.read()
    if not data:
        raise UsageError("miner submit: standard input is empty: expected one entry per line")
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()
    entries = []
    for number, line in enumerate(lines, 1):
        try:
            entries.append(chain.check_entry_text(line.removesuffix(b"\r")))
        except chain.EntryRejected as error:
            raise UsageError(
                f"miner submit: line {number} of standard input: {error}; nothing was stored"
            ) from None
    return entries


def _cmd_submit(args: argparse.Namespace) -> int:
    texts: Sequence[str] = args.texts
    if "-" in texts:
        if len(texts) > 1:
            raise UsageError("miner submit: '-' reads standard input and must be the only TEXT")
        texts = _stdin_entries()
    store = _open(args)
    try:
        ids = store.submit(texts)
    except chain.EntryRejected as error:
        raise UsageError(f"miner submit: {error}; nothing was stored") from None
    print("\n".join(str(entry_id) for entry_id in ids))
    return 0


def _cmd_find(args: argparse.Namespace) -> int:
    store = _open(args)
    status, block = store.find(args.id)
    if status == "pending":
        print(f"entry {args.id}: pending, not yet in a block")
        return EXIT_FAILURE
    if status == "unknown":
        print(f"entry {args.id}: unknown on chain {store.name}")
        return EXIT_FAILURE
    if block is None:
        raise chain.ChainError(f"entry {args.id} is recorded in a block that the chain lacks")
    print(f"entry {args.id}: height {block.height}, block {block.hash_hex}")
    return 0


def _thread_counts(text: str) -> list[int]:
    try:
        return bench.parse_thread_counts(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


# A run shorter than this needs no progress line: it ends before anyone wonders.
_PROGRESS_AFTER_SECONDS = 3.0


def _progress(runs: int, seconds: float) -> bench.Progress | None:
    """A progress line on stderr, only for a terminal (piped output stays clean) and a long run."""
    if sys.stderr.isatty() and runs * seconds > _PROGRESS_AFTER_SECONDS:
        return bench.Progress(runs)
    return None


def _duration(seconds: float) -> str:
    """Seconds in the unit a person reads best: 4.85 s, 12.3 min, 5.1 h, 3.2 d."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= 2 * size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def _cmd_bench(args: argparse.Namespace) -> int:
    try:
        backends = bench.backends_for(args.backend)
    except ValueError as error:
        raise UsageError(f"miner bench: --backend: {error}") from None
    threads = args.threads or [pow.default_threads()]
    if args.target_block_time is not None:
        return _tune(args, backends, threads)
    if args.replicas is not None:
        raise UsageError("miner bench: --replicas is used only with --target-block-time")

    pairs = bench.plan(backends, threads)
    progress = _progress(len(pairs) * args.repeat, args.seconds)
    rows = []
    try:
        for summary in bench.run(pairs, args.seconds, args.repeat, progress):
            if args.json:
                print(json.dumps(summary.as_dict()), flush=True)
            rows.append(summary)
    finally:
        if progress is not None:
            progress.close()
    if not args.json:
        _print_bench_table(rows, args.repeat)
    return 0


def _print_bench_table(rows: Sequence[bench.Summary], repeat: int) -> None:
    spread = f"  {'median':>8}  {'min':>8}  {'max':>8}" if repeat > 1 else ""
    print(f"{'backend':<14} {'threads':>7}  {'MH/s':>8}{spread}  {'compile s':>9}")
    for row in rows:
        line = f"{row.backend:<14} {row.threads:>7}  {row.hashes_per_second / 1e6:>8.2f}"
        if repeat > 1:
            line += f"  {row.median / 1e6:>8.2f}  {row.min / 1e6:>8.2f}  {row.max / 1e6:>8.2f}"
        print(f"{line}  {row.compile_seconds:>9.2f}")
    if repeat > 1:
        print(f"MH/s over all {repeat} runs; median, min and max of the runs' rates")


def _tune(args: argparse.Namespace, backends: list[str], threads: list[int]) -> int:
    """Measure this machine once and print the DIFFICULTY closest to the asked block time."""
    if len(backends) != 1:
        raise UsageError(
            f"miner bench: --target-block-time measures one backend, got --backend {args.backend}"
        )
    if len(threads) != 1:
        raise UsageError(
            "miner bench: --target-block-time measures one thread count, "
            f"got --threads {','.join(map(str, threads))}"
        )
    replicas = args.replicas or 1
    pairs = bench.plan(backends, threads)
    progress = _progress(args.repeat, args.seconds)
    try:
        (summary,) = bench.run(pairs, args.seconds, args.repeat, progress)
    finally:
        if progress is not None:
            progress.close()
    rate = summary.median if args.repeat > 1 else summary.hashes_per_second
    tuning = bench.tune(rate, replicas, args.target_block_time)
    if args.json:
        print(
            json.dumps({**tuning.as_dict(), "backend": summary.backend, "threads": summary.threads})
        )
        return 0
    how = f"median of {args.repeat} runs, " if args.repeat > 1 else ""
    print(
        f"measured: {summary.backend}, {summary.threads} thread(s), {rate / 1e6:.2f} MH/s "
        f"per replica ({how}{summary.seconds:.1f} s of hashing)"
    )
    print(
        f"{replicas} replica(s), target block time {_duration(args.target_block_time)}: "
        f"DIFFICULTY={tuning.difficulty:g} "
        f"(expected block time {_duration(tuning.expected_block_time)})"
    )
    print(f"\n  {'DIFFICULTY':>10}  {'expected block time':>19}")
    for difficulty, seconds in tuning.neighbours:
        mark = ">" if difficulty == tuning.difficulty else " "
        print(f"{mark} {difficulty:>10g}  {_duration(seconds):>19}")
    return 0


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "time": round(record.created, 3),
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage(),
            }
        )


def configure_logging(settings: config.Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)


def _install_stop_signals(stop: threading.Event) -> None:
    """First SIGTERM/SIGINT: finish the slice in flight and exit 0. Second: exit at once."""

    def handle(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            logging.getLogger("miner").warning("%s again: stopping at once", name)
            os._exit(EXIT_FAILURE)
        logging.getLogger("miner").info("%s: stopping (a second signal stops at once)", name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def _run_overrides(args: argparse.Namespace) -> dict[str, str | None]:
    def text(value: object) -> str | None:
        return None if value is None else str(value)

    return {
        "REDIS_URL": args.redis_url,
        "DIFFICULTY": args.difficulty,
        "REFRESH_RATE": args.refresh_rate,
        "POW_BACKEND": args.backend,
        "THREADS": text(args.threads),
        "MINER_ID": args.miner_id,
        "CHAIN": args.chain,
        "LOG_LEVEL": args.log_level,
    }


def _cmd_run(args: argparse.Namespace) -> int:
    settings = load_settings(_run_overrides(args))
    configure_logging(settings)
    # An unreachable Redis is an outage the worker waits out with backoff, so that a replica
    # started before its server (or during a restart) never crash-loops.
    client = _client(settings, must_answer=False)
    stop = threading.Event()
    _install_stop_signals(stop)
    replica = worker.Worker(settings, client, stop=stop, until_height=args.until_height)
    try:
        return replica.run()
    except redis.AuthenticationError as error:
        raise UsageError(_credentials_refused(settings, error)) from None


def _cmd_demo(args: argparse.Namespace) -> int:
    """Replicas of the worker as threads in this process, racing on one store."""
    replicas = args.replicas
    threads = max(1, pow.default_threads() // replicas)
    overrides: dict[str, str | None] = {
        "CHAIN": args.chain,
        "THREADS": str(threads),
        "REDIS_URL": args.redis_url,
        "LOG_LEVEL": "ERROR",  # the demo prints its own story; races lost show in its table
    }
    difficulty = args.difficulty
    if difficulty is None:
        print("measuring this machine (a first run also compiles the kernels)...", flush=True)
        backend = load_settings(overrides).backend
        # All replicas share this machine's cores: what matters is the machine's whole rate.
        cores = pow.default_threads()
        rate = bench.measure(backend, cores, DEMO_MEASURE_SECONDS).hashes_per_second
        difficulty = f"{bench.tune(rate, 1, DEMO_BLOCK_SECONDS).difficulty:g}"
    overrides["DIFFICULTY"] = difficulty
    base = load_settings(overrides)
    configure_logging(base)
    if args.redis_url:
        clients = [open_chain(base).client for _ in range(replicas)]
        where = chain.redacted(base.redis_url)
    else:
        import fakeredis

        server = fakeredis.FakeServer()
        clients = [fakeredis.FakeRedis(server=server, decode_responses=True)] * replicas
        where = "an embedded in-memory store"
    store = chain.Chain(clients[0], base.chain)
    store.ensure_genesis(base.difficulty)
    store.set_difficulty(base.difficulty, "demo")
    until = store.height() + args.blocks
    print(
        f"{replicas} replicas x {threads} thread(s) on {pow.resolve_backend(base.backend)}, "
        f"DIFFICULTY {base.difficulty:g}, racing to height {until} on {where}",
        flush=True,
    )
    printing = threading.Lock()

    def show(block: chain.Block, seconds: float) -> None:
        with printing:
            print(
                f"  height {block.height:>4}  {block.hash_hex[:20]}...  by {block.miner:<8} "
                f"nonce {block.header.nonce:>10}  {seconds:6.2f} s",
                flush=True,
            )

    stop = threading.Event()
    _install_stop_signals(stop)
    workers = [
        worker.Worker(
            load_settings({**overrides, "MINER_ID": f"demo-{i + 1}"}),
            clients[i],
            stop=stop,
            until_height=until,
            on_block=show,
        )
        for i in range(replicas)
    ]
    began = time.monotonic()
    running = [threading.Thread(target=w.run, name=w.miner) for w in workers]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    elapsed = time.monotonic() - began

    print(f"\n{'miner':<10}{'blocks':>7}{'share':>8}{'MH/s':>9}{'lost':>6}{'switch p50':>12}")
    mined = sum(w.stats.blocks for w in workers) or 1
    for w in workers:
        p50 = w.stats.switch_percentile(0.5)
        print(
            f"{w.miner:<10}{w.stats.blocks:>7}{w.stats.blocks / mined:>8.0%}"
            f"{w.stats.hashes / elapsed / 1e6:>9.2f}{w.stats.races_lost:>6}"
            f"{'-' if p50 is None else f'{p50:.1f} ms':>12}"
        )
    verdict = store.verify()
    if verdict.error is not None:
        print(f"\nchain {store.name} is INVALID at {verdict.error}")
        return EXIT_FAILURE
    print(f"\nchain {store.name} verified: {verdict.height + 1} blocks, tip {store.tip_hash()}")
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    settings = load_settings({"CHAIN": args.chain})
    miners = worker.live_miners(open_chain(settings))
    if args.json:
        print(json.dumps([vars(m) for m in miners]))
        return 0
    if not miners:
        print(f"no live miners on chain {settings.chain}")
        return 0
    print(f"{'miner':<24}{'blocks':>7}{'share':>8}{'MH/s':>9}{'lost':>6}{'p50 ms':>8}{'p99 ms':>8}")
    for m in miners:
        p50 = "-" if m.switch_ms_p50 is None else f"{m.switch_ms_p50:.1f}"
        p99 = "-" if m.switch_ms_p99 is None else f"{m.switch_ms_p99:.1f}"
        print(
            f"{m.miner:<24}{m.blocks:>7}{m.share:>8.1%}{m.hashes_per_second / 1e6:>9.2f}"
            f"{m.races_lost:>6}{p50:>8}{p99:>8}"
        )
    return 0


def _cmd_health(args: argparse.Namespace) -> int:
    settings = load_settings({})
    try:
        store = open_chain(settings)
    except Unreachable as error:
        print(f"unhealthy: {str(error).removeprefix('miner: ')}")
        return EXIT_FAILURE
    age = worker.heartbeat_age(store, settings.miner_id)
    if age is None:
        print(f"unhealthy: miner {settings.miner_id} has no heartbeat in Redis")
        return EXIT_FAILURE
    if age > worker.HEARTBEAT_TTL_SECONDS:
        print(f"unhealthy: miner {settings.miner_id}'s heartbeat is {age:.1f} s old")
        return EXIT_FAILURE
    print(f"healthy: Redis answers; miner {settings.miner_id}'s heartbeat is {age:.1f} s old")
    return 0


def _difficulty(text: str) -> str:
    try:
        pow.target_for_difficulty(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected bits of work in (0, 256) such as 22 or 22.5, got {text!r}"
        ) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="miner", description="A proof-of-work mining worker racing on Redis.")
    parser.add_argument("--version", action="version", version=f"miner {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    p = commands.add_parser("bench", help="measure this machine's hash rate")
    p.add_argument(
        "--backend",
        default="auto",
        help="auto, all, or one of: " + ", ".join(pow.backends()),
    )
    p.add_argument(
        "--threads",
        type=_thread_counts,
        default=None,
        metavar="N[,N...]",
        help="thread counts, comma-separated (1,2); default: all usable cores",
    )
    p.add_argument(
        "--seconds",
        type=_positive_float,
        default=3.0,
        metavar="S",
        help="seconds of hashing per measurement (default 3)",
    )
    p.add_argument(
        "--repeat",
        type=_positive_int,
        default=1,
        metavar="K",
        help="measure K times: median, min and max",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument(
        "--target-block-time",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="print the DIFFICULTY whose expected block time is closest to this",
    )
    p.add_argument(
        "--replicas",
        type=_positive_int,
        default=None,
        metavar="R",
        help="replicas racing at this machine's rate (with --target-block-time; default 1)",
    )
    p.set_defaults(handler=_cmd_bench)

    on_chain = _Parser(add_help=False)
    on_chain.add_argument(
        "--chain", metavar="NAME", default=None, help="the chain to use (default: CHAIN, or main)"
    )

    p = commands.add_parser("chain", parents=[on_chain], help="list the last blocks of the chain")
    p.add_argument(
        "--last", type=_count, default=20, metavar="N", help="how many blocks (0: all; default 20)"
    )
    p.add_argument("--json", action="store_true", help="one JSON array of blocks, oldest first")
    p.set_defaults(handler=_cmd_chain)

    p = commands.add_parser("verify", parents=[on_chain], help="check every block of the chain")
    p.set_defaults(handler=_cmd_verify)

    p = commands.add_parser("submit", parents=[on_chain], help="add entries for blocks to record")
    p.add_argument(
        "texts", nargs="+", metavar="TEXT", help="one entry each; '-' alone: one per line of stdin"
    )
    p.set_defaults(handler=_cmd_submit)

    p = commands.add_parser("find", parents=[on_chain], help="say which block holds an entry")
    p.add_argument("id", type=_entry_id, metavar="ID", help="the id that `miner submit` printed")
    p.set_defaults(handler=_cmd_find)

    p = commands.add_parser("run", help="mine: one replica against Redis")
    p.add_argument("--redis-url", help="overrides REDIS_URL (redis:// or rediss://)")
    p.add_argument("--difficulty", type=_difficulty, help="overrides DIFFICULTY")
    p.add_argument("--refresh-rate", help="overrides REFRESH_RATE (seconds)")
    p.add_argument("--backend", help="overrides POW_BACKEND")
    p.add_argument("--threads", type=_positive_int, help="overrides THREADS")
    p.add_argument("--miner-id", help="overrides MINER_ID")
    p.add_argument("--chain", help="overrides CHAIN")
    p.add_argument("--log-level", help="overrides LOG_LEVEL")
    p.add_argument("--until-height", type=_count, help="exit 0 once the chain reaches it")
    p.set_defaults(handler=_cmd_run)

    p = commands.add_parser("demo", help="replicas racing in this process, no server needed")
    p.add_argument("--replicas", type=_positive_int, default=3)
    p.add_argument("--blocks", type=_positive_int, default=10, help="blocks to race for")
    p.add_argument(
        "--difficulty",
        type=_difficulty,
        help=f"default: measured so that a block takes about {DEMO_BLOCK_SECONDS} s here",
    )
    p.add_argument("--redis-url", help="race on this Redis instead of the embedded store")
    p.add_argument("--chain", default="demo")
    p.set_defaults(handler=_cmd_demo)

    p = commands.add_parser("stats", help="the live miners and each one's share of the chain")
    p.add_argument("--json", action="store_true", help="one JSON array of objects")
    p.add_argument("--chain", help="overrides CHAIN")
    p.set_defaults(handler=_cmd_stats)

    p = commands.add_parser(
        "health", help="exit 0 if Redis answers and this worker's beat is fresh"
    )
    p.set_defaults(handler=_cmd_health)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        code: int = args.handler(args)
        return code
    except (UsageError, chain.EntryRejected) as error:
        print(error if isinstance(error, UsageError) else f"miner: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Unreachable as error:
        # The address given does not answer: for a one-shot command that is a setting to check.
        print(error, file=sys.stderr)
        return EXIT_USAGE
    except (redis.ConnectionError, redis.TimeoutError) as error:
        print(f"miner: lost the connection to Redis: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except chain.ChainError as error:
        print(f"miner: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Whoever read the output stopped early (`miner chain --last 0 | head`). Point stdout at
        # /dev/null so that the interpreter's final flush does not fail again on exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
