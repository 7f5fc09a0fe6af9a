"""Hash-rate measurement: how many sha256d per second a backend does on this machine.

Also what the figures are for: the DIFFICULTY that gives a chosen block time to a number of
replicas hashing at a measured rate, and the CPU facts a benchmark records next to its figures.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TextIO

from miner import pow

# A target no hash meets in practice (a hash at or below 1 is a 1-in-2**255 event), so every call
# scans its whole range and the count of hashes is exact.
_NEVER = 1
# How long one measured call should last: long enough that per-call overhead is noise, short
# enough that the measurement ends close to the asked duration.
_CALL_SECONDS = 0.1
# The backends that run on one CPU thread whatever they are asked: hashlib is plain Python under
# the GIL, and the GPU kernel is driven by one thread.
_ONE_THREAD = ("hashlib", "cuda")
# The CPU features that decide which kernel runs, as LLVM names them (/proc/cpuinfo: sha_ni).
CPU_FEATURES = ("sha", "avx2", "avx512f")
# DIFFICULTY candidates step by a quarter bit: each step is x1.19 in work, fine enough to land
# near any block time, and the values stay short to write into a setting.
DIFFICULTY_STEP = 0.25


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


@dataclass(frozen=True)
class Summary:
    """Repeated runs of one backend at one thread count; compile time counted once, apart."""

    backend: str
    threads: int
    compile_seconds: float
    runs: tuple[Measurement, ...]

    @property
    def seconds(self) -> float:
        return sum(run.seconds for run in self.runs)

    @property
    def hashes(self) -> int:
        return sum(run.hashes for run in self.runs)

    @property
    def hashes_per_second(self) -> float:
        """All hashes over all hashing time: the rate across the repeats."""
        return self.hashes / self.seconds

    @property
    def rates(self) -> list[float]:
        return [run.hashes_per_second for run in self.runs]

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    @property
    def min(self) -> float:
        return min(self.rates)

    @property
    def max(self) -> float:
        return max(self.rates)

    def as_dict(self) -> dict[str, object]:
        """The JSON fields; median, min and max (hashes per second) only when repeated."""
        row: dict[str, object] = {
            "backend": self.backend,
            "threads": self.threads,
            "seconds": self.seconds,
            "hashes": self.hashes,
            "hashes_per_second": self.hashes_per_second,
            "compile_seconds": self.compile_seconds,
        }
        if len(self.runs) > 1:
            row.update(median=self.median, min=self.min, max=self.max)
        return row


def backends_for(choice: str) -> list[str]:
    """The concrete backends a --backend value names: "all" is every one usable here.

    The "numba" alias is left out of "all": it is one of the kernels under another name.
    """
    known = pow.backends()
    if choice == "all":
        return [name for name in known if name != "numba"]
    if choice not in ("auto", *known):
        raise ValueError(
            f"unknown backend {choice!r}; known on this machine: all, auto, {', '.join(known)}"
        )
    return [pow.resolve_backend(choice)]


def parse_thread_counts(text: str) -> list[int]:
    """Thread counts from a comma list such as "1,2"; ValueError names what is allowed."""
    items = [item.strip() for item in text.split(",")]
    if not all(item.isdigit() and int(item) >= 1 for item in items):
        raise ValueError(
            f"expected thread counts >= 1 separated by commas (such as 1,2), got {text!r}"
        )
    return [int(item) for item in items]


def plan(backends: Sequence[str], threads: Sequence[int]) -> list[tuple[str, int]]:
    """The (backend, threads) pairs to measure, in order and without repeats.

    A backend that runs on one thread whatever it is asked is measured once, at 1 thread, so
    that no row claims a thread count the backend did not use.
    """
    pairs: list[tuple[str, int]] = []
    for backend in backends:
        for count in threads:
            pair = (backend, 1 if backend in _ONE_THREAD else count)
            if pair not in pairs:
                pairs.append(pair)
    return pairs


class Progress:
    """One line on a terminal, rewritten in place: which measurement of how many is running."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr

    def show(self, text: str) -> None:
        # \r and the erase-line sequence keep it one line, however long the previous text was.
        self.stream.write(f"\r\x1b[K{text}")
        self.stream.flush()

    def step(self, label: str) -> None:
        self.done += 1
        self.show(f"[{self.done}/{self.total}] {label}")

    def close(self) -> None:
        self.show("")


def run(
    pairs: Sequence[tuple[str, int]],
    seconds: float,
    repeat: int = 1,
    progress: Progress | None = None,
) -> Iterator[Summary]:
    """Measure each pair `repeat` times, yielding each summary as soon as it is complete.

    Each backend is warmed up once, before its first measurement, and that time is its
    compile_seconds on every row (a later warm-up in the same process would find it compiled).
    """
    compile_seconds: dict[str, float] = {}
    for backend, threads in pairs:
        if backend not in compile_seconds:
            if progress is not None:
                progress.show(f"warming up {backend} (compile or load from cache)")
            compile_seconds[backend] = pow.warm_up(backend)
        runs = []
        for index in range(repeat):
            if progress is not None:
                progress.step(f"{backend}, {threads} thread(s), run {index + 1} of {repeat}")
            runs.append(measure(backend, threads, seconds))
        yield Summary(backend, threads, compile_seconds[backend], tuple(runs))


# ---------------------------------------------------------------------------------------------
# Choosing DIFFICULTY


@dataclass(frozen=True)
class Tuning:
    """The DIFFICULTY whose expected block time is closest to a target, with its neighbours."""

    rate: float
    replicas: int
    target_block_time: float
    difficulty: float
    expected_block_time: float
    neighbours: tuple[tuple[float, float], ...] = field(default=())

    def as_dict(self) -> dict[str, object]:
        return {
            "rate": self.rate,
            "replicas": self.replicas,
            "target_block_time": self.target_block_time,
            "difficulty": self.difficulty,
            "expected_block_time": self.expected_block_time,
            "neighbours": [{"difficulty": d, "expected_block_time": t} for d, t in self.neighbours],
        }


def expected_block_time(difficulty: float, replicas: int, rate: float) -> float:
    """Seconds the first of `replicas` miners, each at `rate` hashes/s, takes to find a block.

    Uses the exact work of the compact target the difficulty encodes, which rounds the target
    down and so asks slightly more than 2**difficulty hashes.
    """
    work = pow.expected_hashes(pow.target_for_difficulty(difficulty))
    return work / (replicas * rate)


def _candidates(step: float = DIFFICULTY_STEP) -> list[float]:
    """Every multiple of `step` that target_for_difficulty accepts, in increasing order."""
    valid = []
    for index in range(1, int(256 / step)):
        difficulty = index * step
        try:
            pow.target_for_difficulty(difficulty)
        except ValueError:
            continue
        valid.append(difficulty)
    return valid


def tune(rate: float, replicas: int, target_block_time: float, *, span: float = 1.0) -> Tuning:
    """The candidate DIFFICULTY closest to `target_block_time`, and those within `span` of it.

    Closest means the smallest |expected block time - target|; of two equally close, the lower.
    """
    if not rate > 0:
        raise ValueError(f"rate must be > 0 hashes per second, got {rate!r}")
    if replicas < 1:
        raise ValueError(f"replicas must be at least 1, got {replicas!r}")
    times = {d: expected_block_time(d, replicas, rate) for d in _candidates()}
    best = min(times, key=lambda d: abs(times[d] - target_block_time))
    return Tuning(
        rate=rate,
        replicas=replicas,
        target_block_time=target_block_time,
        difficulty=best,
        expected_block_time=times[best],
        neighbours=tuple((d, t) for d, t in times.items() if abs(d - best) <= span),
    )


# ---------------------------------------------------------------------------------------------
# The machine a figure was measured on


@dataclass(frozen=True)
class CpuInfo:
    """What a hash rate depends on: the CPU model, its SHA/AVX features and the usable cores."""

    model: str
    llvm_name: str
    cores: int
    features: dict[str, bool]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def describe(self) -> str:
        """One line for a report: "AMD EPYC (znver5), 2 cores; sha, avx2, avx512f"."""
        present = ", ".join(name for name, has in self.features.items() if has)
        return (
            f"{self.model} ({self.llvm_name}), {self.cores} cores; {present or 'no SHA, no AVX2'}"
        )


def _proc_cpuinfo() -> dict[str, str]:
    """The first processor's fields from /proc/cpuinfo; empty where there is no such file."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as lines:
            for line in lines:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_info() -> CpuInfo:
    """This machine's CPU; its features as LLVM sees them (that decides which kernels run), or
    as /proc/cpuinfo lists them where LLVM cannot tell."""
    proc = _proc_cpuinfo()
    llvm = pow._cpu_features()
    flags = set(proc.get("flags", "").split())
    # The kernel calls the SHA extensions sha_ni; LLVM calls them sha.
    flag_names = {"sha": "sha_ni"}
    try:
        from llvmlite import binding

        llvm_name = str(binding.get_host_cpu_name())
    except ImportError:
        llvm_name = ""
    return CpuInfo(
        model=proc.get("model name", "") or llvm_name or "unknown",
        llvm_name=llvm_name,
        cores=pow.default_threads(),
        features={
            name: bool(llvm[name]) if llvm else flag_names.get(name, name) in flags
            for name in CPU_FEATURES
        },
    )


def plotting_missing() -> str | None:
    """Why the benchmarks cannot draw a plot here (matplotlib is an optional extra), or None."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "--plot needs matplotlib: pip install 'miner[plot]' (or matplotlib)"
    return None
