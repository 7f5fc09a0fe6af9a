"""Proof of work: sha256d over 80-byte Bitcoin headers, compact targets, and the nonce search.

This module knows nothing of Redis or of the chain. `search()` returns the lowest winning nonce in
a range, with the same answer on every backend: "hashlib" is the plain-Python reference, "numba"
the compiled CPU kernels and "cuda" the GPU kernel where a device is present (see `miner.kernels`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import math
import os
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numpy as np

HEADER_SIZE = 80
NONCE_OFFSET = 76
NONCE_SPACE = 2**32

# Nonces each thread of the numba backend takes at a time: small enough that a slice of a search
# stays responsive and an early winner stops the others soon, large enough that the Python
# bookkeeping between chunks costs well under 1% of the hashing.
CHUNK = 1 << 16

Kernel = Callable[[np.ndarray, np.ndarray, np.ndarray, int, int], int]


def sha256d(data: bytes) -> bytes:
    """SHA-256 applied twice, as Bitcoin hashes headers."""
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def bits_to_target(bits: int) -> int:
    """Decode Bitcoin's compact target encoding (`arith_uint256::SetCompact`).

    The top byte is a size in bytes, the low 23 bits a mantissa, and bit 23 a sign. A negative or
    overflowing value is no valid target and raises ValueError, as Bitcoin rejects such bits.
    """
    if not 0 <= bits < 2**32:
        raise ValueError(f"bits must be a 32-bit unsigned value, got {bits!r}")
    size = bits >> 24
    mantissa = bits & 0x007FFFFF
    if size <= 3:
        # Bitcoin shifts the mantissa first and tests the sign and overflow on what is left.
        mantissa >>= 8 * (3 - size)
        target = mantissa
    else:
        target = mantissa << 8 * (size - 3)
    if mantissa and bits & 0x00800000:
        raise ValueError(f"bits 0x{bits:08x} encode a negative target (the sign bit is set)")
    if mantissa and (
        size > 34 or (mantissa > 0xFF and size > 33) or (mantissa > 0xFFFF and size > 32)
    ):
        raise ValueError(f"bits 0x{bits:08x} overflow 256 bits")
    return target


def target_to_bits(target: int) -> int:
    """Encode a target in compact form (`arith_uint256::GetCompact`), rounding down."""
    if not 0 <= target < 2**256:
        raise ValueError(f"target must be in [0, 2**256), got {target!r}")
    size = (target.bit_length() + 7) // 8
    mantissa = target << 8 * (3 - size) if size <= 3 else target >> 8 * (size - 3)
    # A mantissa with its top bit set would read as negative: move one byte into the size.
    if mantissa & 0x00800000:
        mantissa >>= 8
        size += 1
    return (size << 24) | mantissa


def target_for_difficulty(difficulty: float) -> int:
    """The largest compact-representable target not above 2**(256 - difficulty) - 1.

    A block then needs about 2**difficulty hashes; fractional difficulties step finer than x2.
    """
    if not (isinstance(difficulty, (int, float)) and math.isfinite(difficulty)):
        raise ValueError(f"difficulty must be a finite number, got {difficulty!r}")
    if not 0 < difficulty < 256:
        raise ValueError(f"difficulty must be in (0, 256), got {difficulty!r}")
    exponent = 256 - difficulty
    if float(exponent).is_integer():
        bound = 2 ** int(exponent) - 1
    else:
        # A float carries 53 bits; the compact form keeps at most 23, so truncating the float is
        # exact enough, and 2**x for non-integer x never lands on a compact boundary.
        bound = math.floor(2.0**exponent) - 1
    if bound < 1:
        raise ValueError(f"difficulty {difficulty!r} leaves no target of at least 1 (at most 255)")
    return bits_to_target(target_to_bits(bound))


def expected_hashes(target: int) -> float:
    """Expected number of hashes to find one winner under `target`."""
    return 2**256 / (target + 1)


def hash_to_int(digest: bytes) -> int:
    """A hash as the number compared with the target (little-endian, as Bitcoin does)."""
    return int.from_bytes(digest, "little")


# ---------------------------------------------------------------------------------------------
# Backends


def _search_hashlib(header: bytes, target: int, start: int, count: int, threads: int) -> int | None:
    """Reference backend: hashlib with the first 64 bytes' state computed once and copied."""
    prefix = hashlib.sha256(header[:64])
    tail = header[64:NONCE_OFFSET]
    # A winner's top 32 bits (the last four digest bytes) are at most the target's: test those
    # first so that the full 256-bit comparison runs only for candidates.
    top = target >> 224
    pack = struct.Struct("<I").pack
    sha256 = hashlib.sha256
    for nonce in range(start, start + count):
        inner = prefix.copy()
        inner.update(tail + pack(nonce))
        digest = sha256(inner.digest()).digest()
        if int.from_bytes(digest[28:], "little") <= top and hash_to_int(digest) <= target:
            return nonce
    return None


# The compiled kernels, best first, each with the CPU features it needs (as LLVM names them).
# A module is imported, and so compiled, only where the CPU has its features: the SHA
# instructions do not even compile for a CPU without them.
_KERNELS = (
    ("numba-shani", "miner.kernels.shani", ("sha", "sse4.1", "ssse3")),
    ("numba-avx2", "miner.kernels.avx2", ("avx2",)),
    ("numba-scalar", "miner.kernels.scalar", ()),
)


def _cpu_features() -> dict[str, bool]:
    """This CPU's features as LLVM names them ('sha', 'avx2', ...); empty where LLVM can't tell."""
    try:
        from llvmlite import binding

        return dict(binding.get_host_cpu_features())
    except (ImportError, RuntimeError):  # RuntimeError: LLVM knows no feature list for this CPU
        return {}


@cache
def _numba_kernels() -> dict[str, Kernel]:
    """The compiled kernels this CPU can run, best first (empty if numba is unusable)."""
    features = _cpu_features()
    kernels: dict[str, Kernel] = {}
    for name, module, needs in _KERNELS:
        if all(features.get(feature, False) for feature in needs):
            try:
                kernels[name] = importlib.import_module(module).scan
            except ImportError:  # pragma: no cover - numba is a hard dependency
                continue
    return kernels


@cache
def _cuda_kernel() -> Kernel | None:
    """The GPU kernel, when numba-cuda is installed and a real CUDA device is present.

    numba ships a deprecated CUDA target of its own, so numba-cuda itself is looked for. The
    simulator (NUMBA_ENABLE_CUDASIM=1) runs kernels as Python, far slower than the CPU kernels:
    it serves the tests of `miner.kernels.cuda` and never counts as a device here.
    """
    if importlib.util.find_spec("numba_cuda") is None:
        return None
    from numba import cuda
    from numba.core import config

    if config.ENABLE_CUDASIM or not cuda.is_available():
        return None
    from miner.kernels import cuda as gpu

    return gpu.scan


@cache
def _executor(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="miner-pow")


def _header_words(header: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The midstate of the header's first block and its tail as big-endian words."""
    from miner.kernels import scalar

    first = np.frombuffer(header[:64], dtype=">u4").astype(np.uint32)
    tail = np.frombuffer(header[64:NONCE_OFFSET], dtype=">u4").astype(np.uint32)
    return scalar.midstate(first), tail


def _target_words(target: int) -> np.ndarray:
    return np.frombuffer(target.to_bytes(32, "little"), dtype="<u4").astype(np.uint32)


def _search_kernel(
    kernel: Kernel, header: bytes, target: int, start: int, count: int, threads: int
) -> int | None:
    """Run a kernel over [start, start + count) on `threads` threads; the lowest winner wins.

    Threads claim chunks in nonce order. A thread stops claiming once a winner below its next
    chunk is known, and every chunk below the best winner has been finished by whoever claimed
    it, so the result is the lowest winner in the range.
    """
    midstate, tail = _header_words(header)
    target_words = _target_words(target)
    end = start + count
    if threads == 1 or count <= CHUNK:
        found = kernel(midstate, tail, target_words, start, count)
        return None if found < 0 else found

    chunks = itertools.count(start, CHUNK)
    lock = threading.Lock()
    best = [end]

    def work() -> None:
        while True:
            with lock:
                lo = next(chunks)
                if lo >= min(best[0], end):
                    return
            found = kernel(midstate, tail, target_words, lo, min(CHUNK, end - lo))
            if found >= 0:
                with lock:
                    best[0] = min(best[0], found)

    futures = [_executor(threads).submit(work) for _ in range(threads)]
    for future in futures:
        future.result()
    return best[0] if best[0] < end else None


def backends() -> list[str]:
    """The backends usable on this machine, fastest first ("auto" picks the first)."""
    kernels = list(_numba_kernels())
    gpu = ["cuda"] if _cuda_kernel() else []
    return gpu + (["numba", *kernels] if kernels else []) + ["hashlib"]


def default_threads() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def resolve_backend(backend: str) -> str:
    """The concrete backend a name stands for ("auto" and "numba" pick the best available)."""
    known = backends()
    if backend not in ("auto", *known):
        raise ValueError(
            f"unknown backend {backend!r}; known on this machine: auto, {', '.join(known)}"
        )
    if backend == "auto":
        backend = known[0]
    if backend == "numba":
        backend = next(iter(_numba_kernels()))
    return backend


def search(
    header: bytes,
    target: int,
    start: int = 0,
    count: int | None = None,
    *,
    backend: str = "auto",
    threads: int | None = None,
) -> int | None:
    """The lowest nonce n in [start, start + count) whose header hashes at or below `target`.

    `header` is 76 or 80 bytes; an 80-byte header's own nonce is ignored. `count=None` searches to
    the end of the 32-bit nonce space. Returns None when the range holds no winner.
    """
    header = bytes(header)
    if len(header) not in (NONCE_OFFSET, HEADER_SIZE):
        raise ValueError(f"header must be 76 or 80 bytes, got {len(header)}")
    if not 0 < target < 2**256:
        raise ValueError(f"target must be in (0, 2**256), got {target}")
    if not 0 <= start <= NONCE_SPACE:
        raise ValueError(f"start must be in [0, 2**32], got {start}")
    if count is None:
        count = NONCE_SPACE - start
    if count < 0 or start + count > NONCE_SPACE:
        raise ValueError(
            f"start + count must lie in [start, 2**32], got start={start} count={count}"
        )
    if threads is None:
        threads = default_threads()
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    name = resolve_backend(backend)
    if count == 0:
        return None
    if name == "hashlib":
        return _search_hashlib(header, target, start, count, threads)
    if name == "cuda":
        # One call: the kernel splits the range into launches itself, and `threads` is moot.
        gpu = _cuda_kernel()
        assert gpu is not None  # resolve_backend() lists "cuda" only when there is a kernel
        return _search_kernel(gpu, header, target, start, count, 1)
    return _search_kernel(_numba_kernels()[name], header, target, start, count, threads)


def warm_up(backend: str = "auto") -> float:
    """Compile (or load from numba's cache) the kernels a backend uses; returns the seconds taken.

    A worker calls this before its loop so that it never pays compile time while racing.
    """
    import time

    began = time.perf_counter()
    name = resolve_backend(backend)
    if name != "hashlib":
        search(bytes(NONCE_OFFSET), 2**256 - 1, 0, 1, backend=name, threads=1)
    return time.perf_counter() - began
