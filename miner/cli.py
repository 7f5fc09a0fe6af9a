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
