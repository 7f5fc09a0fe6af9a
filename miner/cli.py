"""The `miner` command line: parses arguments and wires the parts together; no logic of its own."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

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


def _cmd_bench(args: argparse.Namespace) -> int:
    try:
        pow.resolve_backend(args.backend)
    except ValueError as error:
        raise UsageError(f"miner bench: --backend: {error}") from None
    threads = args.threads or pow.default_threads()
    result = bench.measure(args.backend, threads, args.seconds)
    if args.json:
        print(json.dumps(result.as_dict()), flush=True)
    else:
        print(
            f"{result.backend:<14} threads={result.threads:<3} "
            f"{result.hashes_per_second / 1e6:8.3f} MH/s  "
            f"({result.hashes:,} hashes in {result.seconds:.2f} s; "
            f"compile/load {result.compile_seconds:.2f} s)"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="miner", description="A proof-of-work mining worker racing on Redis.")
    parser.add_argument("--version", action="version", version=f"miner {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    p = commands.add_parser("bench", help="measure this machine's hash rate")
    p.add_argument(
        "--backend", default="auto", help="auto, or one of: " + ", ".join(pow.backends())
    )
    p.add_argument("--threads", type=_positive_int, default=None, help="default: all usable cores")
    p.add_argument("--seconds", type=_positive_float, default=3.0, help="measure for this long")
    p.add_argument("--json", action="store_true", help="one JSON object per measurement")
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
    except BrokenPipeError:
        # Whoever read the output stopped early (`miner chain --last 0 | head`). Point stdout at
        # /dev/null so that the interpreter's final flush does not fail again on exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
