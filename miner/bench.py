"""Hash-rate measurement: how many sha256d per second a backend does on this machine."""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass

from miner import pow

# A target no hash meets in practice (a hash at or below 1 is a 1-in-2**255 event), so every call
# scans its whole range and the count of hashes is exact.
_NEVER = 1
# How long one measured call should last: long enough that per-call overhead is noise, short
# enough that the measurement ends close to the asked duration.
_CALL_SECONDS = 0.1


@dataclass(frozen=True)
class Measurement:
    """One timed run of a backend."""

    backend: str
    threads: int
    seconds: float
    hashes: int
    hashes_per_second: float
    compile_seconds: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def measure(backend: str, threads: int, seconds: float) -> Measurement:
    """Hash for about `seconds` after warm-up and report the rate.

    The header is random, so that repeated runs hash different data.
    """
    name = pow.resolve_backend(backend)
    compile_seconds = pow.warm_up(name)
    header = os.urandom(pow.NONCE_OFFSET)
    chunk = 1 << 12
    hashes = 0
    start = 0
    began = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds:
        if start + chunk > pow.NONCE_SPACE:
            header, start = os.urandom(pow.NONCE_OFFSET), 0
        call_began = time.perf_counter()
        pow.search(header, _NEVER, start, chunk, backend=name, threads=threads)
        call_seconds = time.perf_counter() - call_began
        hashes += chunk
        start += chunk
        elapsed = time.perf_counter() - began
        # Grow (or shrink) the next call towards _CALL_SECONDS, without overshooting the end.
        rate = chunk / max(call_seconds, 1e-6)
        remaining = max(seconds - elapsed, 0.0)
        chunk = max(1 << 10, int(rate * min(_CALL_SECONDS, remaining + 0.01)))
    return Measurement(
        backend=name,
        threads=threads,
        seconds=elapsed,
        hashes=hashes,
        hashes_per_second=hashes / elapsed,
        compile_seconds=compile_seconds,
    )


def difficulty_for(rate: float, block_seconds: float, step: float = 0.25) -> float:
    """The DIFFICULTY, in `step`s, whose expected block time at `rate` hashes/s is closest."""
    best, best_error = step, math.inf
    difficulty = step
    while difficulty <= 255:
        expected = pow.expected_hashes(pow.target_for_difficulty(difficulty)) / rate
        error = abs(math.log(expected / block_seconds))
        if error < best_error:
            best, best_error = difficulty, error
        difficulty += step
    return best
