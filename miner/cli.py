"""The `miner` command line: parses arguments and wires the parts together; no logic of its own."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import redis

from miner import __version__, bench, chain, config, pow

EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A bad argument or setting: reported as one line, exit code 2."""


class Unreachable(Exception):
    """Redis did not answer: reported as one line naming the address, exit code 1."""


def load_settings(overrides: dict[str, str | None] | None = None) -> config.Settings:
    """Settings from the environment, with flags given on the command line taking precedence."""
    given = {name: value for name, value in (overrides or {}).items() if value is not None}
    try:
        return config.load(overrides=given)
    except config.ConfigError as error:
        raise UsageError(f"miner: {error}") from None


def open_chain(settings: config.Settings) -> chain.Chain:
    """A connected chain store; Unreachable (one line, password masked) if Redis does not answer."""
    client = chain.connect(settings.redis_url, ca_cert=settings.redis_ca_cert)
    try:
        client.ping()
    except redis.AuthenticationError as error:
        raise UsageError(
            f"miner: Redis at {chain.redacted(settings.redis_url)} refused the credentials "
            f"(REDIS_PASSWORD or the user in REDIS_URL): {error}"
        ) from None
    except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
        raise Unreachable(
            f"miner: cannot reach Redis at {chain.redacted(settings.redis_url)}: {error}"
        ) from None
    return chain.Chain(client, settings.chain)


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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


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
        print(error, file=sys.stderr)
        return EXIT_FAILURE
    except (redis.ConnectionError, redis.TimeoutError) as error:
        print(f"miner: lost the connection to Redis: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except chain.ChainError as error:
        print(f"miner: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
