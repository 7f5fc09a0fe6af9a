"""The GPU kernel: sha256d of one nonce per CUDA thread, searched launch by launch from the host.

`scan` has the signature every kernel shares (see `miner.kernels`), and the SHA-256 steps are the
portable kernel's own (`miner.kernels.scalar`), compiled for the device. It needs numba-cuda and,
to be fast, a real device. Under numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1) each thread runs
as Python calling those steps compiled for the CPU, which is how the tests check it on machines
without a GPU. `miner.pow` offers this kernel as the "cuda" backend only on a real device.

How one scan runs, for a range [start, start + count):

    host:   launch [start, start + n)  ->  wait, read `best`  ->  winner? return it
                                                               ->  none: next launch, n resized
    device: each thread hashes start + i; a winner does atomic.min(best, i)

A launch's winners all lie above the previous launches' nonces, so the first launch with a winner
holds the lowest winner of the whole range.
"""

from __future__ import annotations

import time

import numpy as np
from numba import cuda

from miner.kernels.scalar import bswap, compress, meets_target
from miner.kernels.sha256 import IV

u32 = np.uint32

# A multiple of the warp size (32) that divides every architecture's limit of resident threads
# per SM (1,024 to 2,048), so the block size never caps occupancy: registers do.
THREADS_PER_BLOCK = 256
# The first launch of a scan hashes this many nonces: a few full waves on a large GPU (an H100 or
# H200 holds 132 SMs x 2,048 threads = 270,336 at once), over within milliseconds on any GPU.
FIRST_LAUNCH = 1 << 20
# Later launches are sized from the rate seen so far to last about this long: short enough that
# a worker's slice of about 50 ms still ends on time, long enough that launch and synchronisation
# (tens of microseconds) cost about 1% of the hashing.
LAUNCH_SECONDS = 0.02
# A launch's size is capped so that an offset within it always fits below NO_WINNER.
MAX_LAUNCH = 1 << 31
# What `best` holds while no thread of the launch has found a winner: no launch is this long.
NO_WINNER = u32(0xFFFFFFFF)


# TODO: in the PTX for sm_90, the 64 rounds of `compress` stay a loop reading the schedule from
# local memory, and the first three rounds (before the nonce word) are recomputed per thread. An
# unrolled compression held in registers, with those rounds done once on the host, should be
# faster; benchmarks/gpu_check.py measures how far the rate is from the device's limit.
@cuda.jit  # type: ignore[untyped-decorator]  # numba-cuda has no type hints
def _hash_nonces(
    midstate: np.ndarray,
    tail: np.ndarray,
    target_words: np.ndarray,
    first: int,
    count: int,
    best: np.ndarray,
) -> None:
    """Thread i hashes nonce first + i (i < count); a winner lowers best[0] to its offset i."""
    i = cuda.grid(1)
    if i >= count:
        return

    # The header's second block: 12 fixed bytes, the nonce (little-endian in the header, so
    # byte-swapped as a big-endian message word), then FIPS 180-4 5.1.1 padding for an 80-byte
    # message: a 0x80 marker and the length, 640 bits.
    w1 = cuda.local.array(64, np.uint32)
    for t in range(16):
        w1[t] = 0
    w1[0] = tail[0]
    w1[1] = tail[1]
    w1[2] = tail[2]
    w1[3] = bswap(u32(first + i))
    w1[4] = 0x80000000
    w1[15] = 640
    state = cuda.local.array(8, np.uint32)
    for t in range(8):
        state[t] = midstate[t]
    compress(state, w1)

    # The second hash: the 32-byte digest padded to one block (length 256 bits).
    w2 = cuda.local.array(64, np.uint32)
    for t in range(8):
        w2[t] = state[t]
        w2[t + 8] = 0
        state[t] = IV[t]
    w2[8] = 0x80000000
    w2[15] = 256
    compress(state, w2)

    # A thread-local copy: the simulator passes device arrays as wrappers that compiled helpers
    # cannot take, and on a device the eight words then sit in registers.
    target = cuda.local.array(8, np.uint32)
    for t in range(8):
        target[t] = target_words[t]
    if meets_target(state, target):
        cuda.atomic.min(best, 0, u32(i))


def scan(
    midstate: np.ndarray, tail: np.ndarray, target_words: np.ndarray, start: int, count: int
) -> int:
    """Lowest nonce in [start, start + count) whose sha256d meets the target, or -1.

    Blocks the calling thread while the device hashes; each launch lasts about LAUNCH_SECONDS.
    """
    if count <= 0:
        return -1
    d_midstate = cuda.to_device(np.ascontiguousarray(midstate, dtype=np.uint32))
    d_tail = cuda.to_device(np.ascontiguousarray(tail, dtype=np.uint32))
    d_target = cuda.to_device(np.ascontiguousarray(target_words, dtype=np.uint32))
    # Left at NO_WINNER by every launch but the last, so it is never reset.
    d_best = cuda.to_device(np.array([NO_WINNER], dtype=np.uint32))

    first, end = start, start + count
    size = FIRST_LAUNCH
    while first < end:
        # Python ints throughout: first + size may be 2**32, which no uint32 holds.
        n = min(size, end - first)
        blocks = -(-n // THREADS_PER_BLOCK)
        began = time.perf_counter()
        _hash_nonces[blocks, THREADS_PER_BLOCK](d_midstate, d_tail, d_target, first, n, d_best)
        offset = int(d_best.copy_to_host()[0])
        seconds = time.perf_counter() - began
        if offset != NO_WINNER:
            return first + offset
        first += n
        rate = n / max(seconds, 1e-6)
        size = min(MAX_LAUNCH, max(FIRST_LAUNCH, int(rate * LAUNCH_SECONDS)))
    return -1
