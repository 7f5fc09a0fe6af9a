"""Settings: read once from the environment (and `miner run` flags), validated, then frozen."""

from __future__ import annotations

import math
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

from miner import pow
from miner.chain import GENESIS_MINER, MAX_BLOCK_ENTRIES

# Measured: two replicas of 2 threads each on a 2-core x86-64 machine with SHA-NI (38.6 MH/s
# between them) found a block every 3.7 s at this difficulty (benchmarks/bench_race.py).
DEFAULT_DIFFICULTY = 27.0
DEFAULT_BLOCK_ENTRIES = 100
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
# The chain name goes inside a Redis Cluster hash tag, so it may not hold braces.
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_MINER_ID = re.compile(r"[A-Za-z0-9._:@-]{1,64}")
MINER_ID_ALLOWED = "1-64 of letters, digits and . _ : @ -"


class ConfigError(Exception):
    """A setting with a value that is not allowed; the message names both, in one line."""


@dataclass(frozen=True)
class Settings:
    redis_url: str
    redis_ca_cert: str | None
    redis_cluster: bool
    refresh_rate: float
    difficulty: float
    backend: str
    threads: int
    miner_id: str
    chain: str
    log_level: str
    log_format: str
    block_entries: int


def _parse_float(name: str, raw: str, low: float, high: float, allowed: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and low < value < high):
        raise ConfigError(f"{name}={raw!r} is not allowed: expected {allowed}")
    return value


def _parse_int(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ConfigError(f"{name}={raw!r} is not allowed: expected a whole number {low}..{high}")
    return value


def _choice(name: str, raw: str, allowed: tuple[str, ...], *, fold: Callable[[str], str]) -> str:
    value = fold(raw.strip())
    if value not in allowed:
        raise ConfigError(f"{name}={raw!r} is not allowed: expected one of {', '.join(allowed)}")
    return value


def _pattern(name: str, raw: str, pattern: re.Pattern[str], allowed: str) -> str:
    if not pattern.fullmatch(raw):
        raise ConfigError(f"{name}={raw!r} is not allowed: expected {allowed}")
    return raw


_YES = ("1", "yes", "true", "on")
_NO = ("0", "no", "false", "off")


def _flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value not in _YES + _NO:
        raise ConfigError(f"{name}={raw!r} is not allowed: expected one of {', '.join(_YES + _NO)}")
    return value in _YES


def _redis_url(env: Mapping[str, str]) -> str:
    url = env.get("REDIS_URL", "").strip()
    if url:
        if not url.startswith(("redis://", "rediss://")):
            shown = url.split("@")[-1]
            raise ConfigError(
                f"REDIS_URL=...{shown!r} is not allowed: expected a redis:// or rediss:// URL"
            )
        return url
    host = env.get("REDIS_HOST", "localhost").strip()
    if not host or any(c.isspace() or c in "/@?#" for c in host):
        raise ConfigError(f"REDIS_HOST={host!r} is not allowed: expected a host name or address")
    port = _parse_int("REDIS_PORT", env.get("REDIS_PORT", "6379"), 1, 65535)
    db = _parse_int("REDIS_DB", env.get("REDIS_DB", "0"), 0, 1_000_000)
    password = env.get("REDIS_PASSWORD", "")
    credentials = f":{quote(password, safe='')}@" if password else ""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return f"redis://{credentials}{host}:{port}/{db}"


def load(
    env: Mapping[str, str] | None = None, overrides: Mapping[str, str] | None = None
) -> Settings:
    """Read and check every setting; ConfigError names the first bad one.

    `overrides` holds `miner run` flags under the names of the variables they replace.
    """
    env = {**(os.environ if env is None else env), **(overrides or {})}

    def get(name: str, default: str) -> str:
        value = env.get(name, "")
        return value if value.strip() else default

    ca_cert = get("REDIS_CA_CERT", "") or None
    if ca_cert is not None and not os.path.isfile(ca_cert):
        raise ConfigError(f"REDIS_CA_CERT={ca_cert!r} is not allowed: expected a readable file")
    raw_difficulty = get("DIFFICULTY", str(DEFAULT_DIFFICULTY))
    allowed = "bits of work in (0, 256), such as 22 or 22.5"
    difficulty = _parse_float("DIFFICULTY", raw_difficulty, 0, 256, allowed)
    try:
        pow.target_for_difficulty(difficulty)
    except ValueError as error:
        raise ConfigError(f"DIFFICULTY={raw_difficulty!r} is not allowed: {error}") from None
    miner_id = _pattern(
        "MINER_ID", get("MINER_ID", socket.gethostname()), _MINER_ID, MINER_ID_ALLOWED
    )
    if miner_id == GENESIS_MINER:
        raise ConfigError(f"MINER_ID={miner_id!r} is not allowed: it names the genesis block")
    known_backends = ("auto", *pow.backends())
    return Settings(
        redis_url=_redis_url(env),
        redis_ca_cert=ca_cert,
        redis_cluster=_flag("REDIS_CLUSTER", get("REDIS_CLUSTER", "no")),
        refresh_rate=_parse_float(
            "REFRESH_RATE", get("REFRESH_RATE", "1.0"), 0, math.inf, "a number of seconds > 0"
        ),
        difficulty=difficulty,
        backend=_choice("POW_BACKEND", get("POW_BACKEND", "auto"), known_backends, fold=str.lower),
        threads=_parse_int("THREADS", get("THREADS", str(pow.default_threads())), 1, 1024),
        miner_id=miner_id,
        chain=_pattern("CHAIN", get("CHAIN", "main"), _NAME, "1-64 of letters, digits and . _ -"),
        log_level=_choice("LOG_LEVEL", get("LOG_LEVEL", "INFO"), LOG_LEVELS, fold=str.upper),
        log_format=_choice("LOG_FORMAT", get("LOG_FORMAT", "text"), LOG_FORMATS, fold=str.lower),
        block_entries=_parse_int(
            "BLOCK_ENTRIES", get("BLOCK_ENTRIES", str(DEFAULT_BLOCK_ENTRIES)), 0, MAX_BLOCK_ENTRIES
        ),
    )
