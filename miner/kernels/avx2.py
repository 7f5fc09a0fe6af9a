"""The nonce-search kernel for x86 CPUs with AVX2 but no SHA extensions: eight nonces in lock-step.

Each of the eight lanes of a ymm register hashes its own nonce (see `miner.kernels.lanes`). The
parts of the hash that do not depend on the nonce are computed once per call: block 2's rounds
0-2 and its words W[16] and W[17] (the nonce is W[3]). Block 3 stops after round 60: the
digest's last word is IV7 plus h after round 63, which is e after round 60 (e -> f -> g -> h).
Only the most significant 32 bits of the hash are compared; a nonce that passes is confirmed by
the portable kernel, so the answer is exactly the portable kernel's.
"""

import numba as nb
import numpy as np

from miner.kernels import scalar
from miner.kernels.lanes import LANES, byteswap, lane, load, rotr, series, splat, store
from miner.kernels.sha256 import IV, K


@nb.njit(inline="always")
def _splat_state(words: np.ndarray):  # type: ignore[no-untyped-def]
    """The eight words of a SHA-256 state, each in all lanes."""
    return (
        splat(words[0]),
        splat(words[1]),
        splat(words[2]),
        splat(words[3]),
        splat(words[4]),
        splat(words[5]),
        splat(words[6]),
        splat(words[7]),
    )


@nb.njit(inline="always")
def _expand(w: np.ndarray, first: int, last: int) -> None:
    """Words W[first..last) of the message schedule, eight lanes each (FIPS 180-4 6.2.2)."""
    for t in range(first, last):
        x = load(w, LANES * (t - 15))
        y = load(w, LANES * (t - 2))
        s0 = rotr(x, 7) ^ rotr(x, 18) ^ (x >> 3)
        s1 = rotr(y, 17) ^ rotr(y, 19) ^ (y >> 10)
        store(w, LANES * t, load(w, LANES * (t - 16)) + s0 + load(w, LANES * (t - 7)) + s1)


@nb.njit(inline="always")
def _rounds(state, w: np.ndarray, first: int, last: int):  # type: ignore[no-untyped-def]
    """Rounds first..last-1 of a compression on the working variables (a, ..., h)."""
    a, b, c, d, e, f, g, h = state
    for t in range(first, last):
        t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g))
        t1 = t1 + K[t] + load(w, LANES * t)
        t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))
        h, g, f, e, d, c, b, a = g, f, e, d + t1, c, b, a, t1 + t2
    return a, b, c, d, e, f, g, h


@nb.njit(nogil=True, cache=True)
def scan(
    midstate: np.ndarray, tail: np.ndarray, target_words: np.ndarray, start: int, count: int
) -> int:
    """Lowest nonce in [start, start + count) whose sha256d meets the target, or -1."""
    # Block 2: the tail, the nonce, then FIPS 180-4 padding for 640 bits (0x80, the length).
    w1 = np.zeros(64 * LANES, dtype=np.uint32)
    for i in range(3):
        store(w1, LANES * i, splat(tail[i]))
    store(w1, LANES * 4, splat(0x80000000))
    store(w1, LANES * 15, splat(640))
    _expand(w1, 16, 18)
    # Block 3: the 32-byte digest of block 2, then padding for 256 bits.
    w2 = np.zeros(64 * LANES, dtype=np.uint32)
    store(w2, LANES * 8, splat(0x80000000))
    store(w2, LANES * 15, splat(256))

    ms = _splat_state(midstate)
    iv = _splat_state(IV)
    round3 = _rounds(ms, w1, 0, 3)

    top = target_words[7]
    end = start + count
    for n in range(start, end, LANES):
        # Nonces past the end (past 2**32 - 1 they wrap) are hashed but never reported.
        store(w1, LANES * 3, byteswap(series(n)))
        _expand(w1, 18, 64)
        a, b, c, d, e, f, g, h = _rounds(round3, w1, 3, 64)
        store(w2, LANES * 0, a + ms[0])
        store(w2, LANES * 1, b + ms[1])
        store(w2, LANES * 2, c + ms[2])
        store(w2, LANES * 3, d + ms[3])
        store(w2, LANES * 4, e + ms[4])
        store(w2, LANES * 5, f + ms[5])
        store(w2, LANES * 6, g + ms[6])
        store(w2, LANES * 7, h + ms[7])
        _expand(w2, 16, 61)
        last = byteswap(_rounds(iv, w2, 0, 61)[4] + IV[7])
        for i in range(LANES):
            if (
                n + i < end
                and lane(last, i) <= top
                and scalar.scan(midstate, tail, target_words, n + i, 1) >= 0
            ):
                return n + i
    return -1
