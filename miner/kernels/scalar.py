"""The portable compiled kernel: plain SHA-256 in numba, one nonce at a time, for any CPU."""

import numba as nb
import numpy as np

from miner.kernels.sha256 import IV, K

u32 = np.uint32

# numba widens uint32 arithmetic to 64 bits; casting each step back to uint32 lets LLVM keep
# 32-bit registers and emit real rotates.


@nb.njit(inline="always")
def _rotr(x: np.uint32, n: int) -> np.uint32:
    return u32((x >> n) | (x << (32 - n)))


@nb.njit(inline="always")
def bswap(x: np.uint32) -> np.uint32:
    """Reverse the byte order of a 32-bit word."""
    return u32(
        ((x & u32(0xFF)) << 24) | ((x & u32(0xFF00)) << 8) | ((x >> 8) & u32(0xFF00)) | (x >> 24)
    )


@nb.njit(inline="always")
def compress(state: np.ndarray, w: np.ndarray) -> None:
    """One SHA-256 compression (FIPS 180-4 6.2.2) of the 16 words at the start of `w` into `state`.

    `w` is uint32[64]; the message schedule is expanded into its words 16..63.
    """
    for t in range(16, 64):
        x = w[t - 15]
        y = w[t - 2]
        s0 = _rotr(x, 7) ^ _rotr(x, 18) ^ (x >> 3)
        s1 = _rotr(y, 17) ^ _rotr(y, 19) ^ (y >> 10)
        w[t] = u32(w[t - 16] + s0 + w[t - 7] + s1)
    a, b, c, d = state[0], state[1], state[2], state[3]
    e, f, g, h = state[4], state[5], state[6], state[7]
    for t in range(64):
        t1 = u32(h + (_rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[t])
        t1 = u32(t1 + w[t])
        t2 = u32((_rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c)))
        h, g, f, e = g, f, e, u32(d + t1)
        d, c, b, a = c, b, a, u32(t1 + t2)
    state[0] = u32(state[0] + a)
    state[1] = u32(state[1] + b)
    state[2] = u32(state[2] + c)
    state[3] = u32(state[3] + d)
    state[4] = u32(state[4] + e)
    state[5] = u32(state[5] + f)
    state[6] = u32(state[6] + g)
    state[7] = u32(state[7] + h)


@nb.njit(nogil=True, cache=True)
def midstate(first_block: np.ndarray) -> np.ndarray:
    """The SHA-256 state after compressing one 64-byte block (16 big-endian words)."""
    state = IV.copy()
    w = np.zeros(64, dtype=np.uint32)
    w[:16] = first_block
    compress(state, w)
    return state


@nb.njit(inline="always")
def meets_target(state: np.ndarray, target_words: np.ndarray) -> bool:
    """Whether a digest (8 big-endian words) read as a little-endian integer is <= the target.

    Limb i of that integer is word i byte-swapped; limb 7 is the most significant.
    """
    for i in range(7, -1, -1):
        limb = bswap(state[i])
        if limb != target_words[i]:
            return limb < target_words[i]
    return True


@nb.njit(nogil=True, cache=True)
def scan(
    midstate: np.ndarray, tail: np.ndarray, target_words: np.ndarray, start: int, count: int
) -> int:
    """Lowest nonce in [start, start + count) whose sha256d meets the target, or -1."""
    state = np.empty(8, dtype=np.uint32)
    # The header's second block: 12 fixed bytes, the nonce, then FIPS 180-4 padding for an
    # 80-byte message (a 0x80 marker and the length, 640 bits).
    w1 = np.zeros(64, dtype=np.uint32)
    w1[:3] = tail
    w1[4] = 0x80000000
    w1[15] = 640
    # The second hash: a 32-byte digest padded to one block (length 256 bits).
    w2 = np.zeros(64, dtype=np.uint32)
    w2[8] = 0x80000000
    w2[15] = 256
    for n in range(start, start + count):
        state[:] = midstate
        w1[3] = bswap(u32(n))
        compress(state, w1)
        w2[:8] = state
        state[:] = IV
        compress(state, w2)
        if meets_target(state, target_words):
            return n
    return -1
