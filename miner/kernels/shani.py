"""The nonce-search kernel for x86 CPUs with the SHA extensions: several nonces interleaved.

A single sha256d is latency-bound: each `sha256rnds2` waits for the one before. Hashing `WAYS`
nonces at once, instruction by instruction, keeps the SHA unit busy (see `miner.kernels.sha_ext`).
Everything that does not depend on the nonce is computed once per call:

- block 2, rounds 0-3: the nonce is W[3] and enters round 3 only by addition, so the state after
  round 3 is the state for nonce 0 plus the nonce in words A and E;
- block 2, rounds 4-15: W[4..15] are the fixed padding of an 80-byte message (FIPS 180-4 5.1.1);
- block 2, W[16], W[17] and the sigma0 terms built from W[4..16] only;
- block 3, rounds 8-15: W[8..15] are the fixed padding of a 32-byte message;
- block 3 stops after rounds 60-61 (of 0-63): the digest's last word is IV7 plus h after round
  63, which is e after round 60 (the working variables shift e -> f -> g -> h), and the pair of
  rounds 60-61 leaves that in lane F of its new `abef`.

Only the most significant 32 bits of the hash are compared in the loop; a nonce that passes is
confirmed by the portable kernel, so the answer is exactly the portable kernel's.
"""

from typing import Any, NamedTuple

import numba as nb
import numpy as np

from miner.kernels import scalar
from miner.kernels.sha256 import IV, K
from miner.kernels.sha_ext import (
    abcd,
    add,
    alignr,
    and_,
    byteswap,
    efgh,
    expand,
    four_rounds,
    high_pair,
    lane,
    load,
    msg1,
    msg2,
    rnds2,
    splat_series,
    to_abef,
    to_cdgh,
    vec,
)

# Nonces hashed together. One sha256d is a chain of 61 dependent `sha256rnds2`. Measured on
# Zen 5 against the limit of `benchmarks/bench_sha_limit.py`: 3 ways reach about 0.75 of it,
# 4 about 0.85, 6 about 1.0, 8 no more (the SHA instructions address only xmm0-xmm15, and
# more streams spill registers).
WAYS = 6

u32 = np.uint32


class _Fixed(NamedTuple):
    """What one header's sha256d has in common for every nonce (vectors as in `sha_ext`)."""

    midstate_abef: Any
    midstate_cdgh: Any
    # Block 2: the state after round 3 and W[0..3] for nonce 0; W + K of rounds 4-15 (both pairs
    # of each four); the padding words W[4..7] and W[12..15]; x5, all of W[20..23] but the sigma1
    # terms msg2 adds; x6 and x7, W[t-16] + sigma0(W[t-15]) of W[24..27] and W[28..31].
    abef3: Any
    cdgh3: Any
    w0: Any
    w1: Any
    w3: Any
    wk1: Any
    wk1_high: Any
    wk2: Any
    wk2_high: Any
    wk3: Any
    wk3_high: Any
    x5: Any
    x6: Any
    x7: Any
    # Block 3: the IV, the padding words W[8..11] and W[12..15], W + K of rounds 8-15, and
    # W[t-16] + sigma0(W[t-15]) of W[24..27].
    iv_abef: Any
    iv_cdgh: Any
    pad2: Any
    pad3: Any
    wk2_second: Any
    wk2_second_high: Any
    wk3_second: Any
    wk3_second_high: Any
    x6_second: Any


@nb.njit(inline="always")
def _fixedfour_rounds(abef, cdgh, wk, wk_high):  # type: ignore[no-untyped-def]
    """Four rounds whose W + K is known in advance, both pairs of it."""
    cdgh = rnds2(cdgh, abef, wk)
    abef = rnds2(abef, cdgh, wk_high)
    return abef, cdgh


@nb.njit(inline="always")
def _prepare(midstate: np.ndarray, tail: np.ndarray) -> _Fixed:
    ms_abcd = vec(midstate[0], midstate[1], midstate[2], midstate[3])
    ms_efgh = vec(midstate[4], midstate[5], midstate[6], midstate[7])
    ms_abef = to_abef(ms_abcd, ms_efgh)
    ms_cdgh = to_cdgh(ms_abcd, ms_efgh)
    iv_abcd = vec(IV[0], IV[1], IV[2], IV[3])
    iv_efgh = vec(IV[4], IV[5], IV[6], IV[7])

    # Block 2 is tail, nonce, then FIPS 180-4 padding for 640 bits: 0x80 and the length.
    w0 = vec(tail[0], tail[1], tail[2], 0)
    w1 = vec(0x80000000, 0, 0, 0)
    w2 = vec(0, 0, 0, 0)
    w3 = vec(0, 0, 0, 640)
    abef3, cdgh3 = four_rounds(ms_abef, ms_cdgh, add(w0, load(K, 0)))
    wk1 = add(w1, load(K, 4))
    wk2 = add(w2, load(K, 8))
    wk3 = add(w3, load(K, 12))
    # W[16] and W[17] do not involve the nonce (W[3]): lane 0 of w4 is right for every nonce.
    w4 = expand(w0, w1, w2, w3)
    x5 = add(msg1(w1, w2), alignr(w4, w3))
    x6 = msg1(w2, w3)
    x7 = msg1(w3, w4)

    # Block 3 is the 32-byte digest, then padding for 256 bits.
    pad2 = vec(0x80000000, 0, 0, 0)
    pad3 = vec(0, 0, 0, 256)
    wk2_second = add(pad2, load(K, 8))
    wk3_second = add(pad3, load(K, 12))
    return _Fixed(
        midstate_abef=ms_abef,
        midstate_cdgh=ms_cdgh,
        abef3=abef3,
        cdgh3=cdgh3,
        w0=w0,
        w1=w1,
        w3=w3,
        wk1=wk1,
        wk1_high=high_pair(wk1),
        wk2=wk2,
        wk2_high=high_pair(wk2),
        wk3=wk3,
        wk3_high=high_pair(wk3),
        x5=x5,
        x6=x6,
        x7=x7,
        iv_abef=to_abef(iv_abcd, iv_efgh),
        iv_cdgh=to_cdgh(iv_abcd, iv_efgh),
        pad2=pad2,
        pad3=pad3,
        wk2_second=wk2_second,
        wk2_second_high=high_pair(wk2_second),
        wk3_second=wk3_second,
        wk3_second_high=high_pair(wk3_second),
        x6_second=msg1(pad2, pad3),
    )


@nb.njit(inline="always")
def _last_words(nonces, f: _Fixed):  # type: ignore[no-untyped-def]
    """For each stream's nonce word, the second hash's h after round 63 (digest word 7 - IV7).

    `nonces` holds each stream's nonce as the big-endian word W[3], in all four lanes.
    """
    # Block 2 from round 4: the nonce goes into A and E of the state and into W[3].
    abef = add(f.abef3, and_(nonces, vec(0, -1, 0, -1)))
    w0 = add(f.w0, and_(nonces, vec(0, 0, 0, -1)))
    abef, cdgh = _fixedfour_rounds(abef, f.cdgh3, f.wk1, f.wk1_high)
    abef, cdgh = _fixedfour_rounds(abef, cdgh, f.wk2, f.wk2_high)
    abef, cdgh = _fixedfour_rounds(abef, cdgh, f.wk3, f.wk3_high)
    w4 = msg2(msg1(w0, f.w1), f.w3)
    abef, cdgh = four_rounds(abef, cdgh, add(w4, load(K, 16)))
    w5 = msg2(f.x5, w4)
    abef, cdgh = four_rounds(abef, cdgh, add(w5, load(K, 20)))
    w6 = msg2(add(f.x6, alignr(w5, w4)), w5)
    abef, cdgh = four_rounds(abef, cdgh, add(w6, load(K, 24)))
    w7 = msg2(add(f.x7, alignr(w6, w5)), w6)
    abef, cdgh = four_rounds(abef, cdgh, add(w7, load(K, 28)))
    for t in range(32, 64, 4):
        w4, w5, w6, w7 = w5, w6, w7, expand(w4, w5, w6, w7)
        abef, cdgh = four_rounds(abef, cdgh, add(w7, load(K, t)))
    abef = add(abef, f.midstate_abef)
    cdgh = add(cdgh, f.midstate_cdgh)

    # Block 3: the digest of block 2 as its first eight words.
    w0 = abcd(abef, cdgh)
    w1 = efgh(abef, cdgh)
    abef, cdgh = four_rounds(f.iv_abef, f.iv_cdgh, add(w0, load(K, 0)))
    abef, cdgh = four_rounds(abef, cdgh, add(w1, load(K, 4)))
    abef, cdgh = _fixedfour_rounds(abef, cdgh, f.wk2_second, f.wk2_second_high)
    abef, cdgh = _fixedfour_rounds(abef, cdgh, f.wk3_second, f.wk3_second_high)
    w4 = msg2(msg1(w0, w1), f.pad3)
    abef, cdgh = four_rounds(abef, cdgh, add(w4, load(K, 16)))
    w5 = msg2(add(msg1(w1, f.pad2), alignr(w4, f.pad3)), w4)
    abef, cdgh = four_rounds(abef, cdgh, add(w5, load(K, 20)))
    w6 = msg2(add(f.x6_second, alignr(w5, w4)), w5)
    abef, cdgh = four_rounds(abef, cdgh, add(w6, load(K, 24)))
    w7 = msg2(add(msg1(f.pad3, w4), alignr(w6, w5)), w6)
    abef, cdgh = four_rounds(abef, cdgh, add(w7, load(K, 28)))
    for t in range(32, 60, 4):
        w4, w5, w6, w7 = w5, w6, w7, expand(w4, w5, w6, w7)
        abef, cdgh = four_rounds(abef, cdgh, add(w7, load(K, t)))
    w7 = expand(w4, w5, w6, w7)
    return lane(rnds2(cdgh, abef, add(w7, load(K, 60))), 0)


@nb.njit(nogil=True, cache=True)
def scan(
    midstate: np.ndarray, tail: np.ndarray, target_words: np.ndarray, start: int, count: int
) -> int:
    """Lowest nonce in [start, start + count) whose sha256d meets the target, or -1."""
    fixed = _prepare(midstate, tail)
    top = target_words[7]
    end = start + count
    for n in range(start, end, WAYS):
        # Nonces past the end (past 2**32 - 1 they wrap) are hashed but never reported.
        last = _last_words(byteswap(splat_series(n, WAYS)), fixed)
        for i in range(WAYS):
            if (
                n + i < end
                and scalar.bswap(u32(last[i] + IV[7])) <= top
                and scalar.scan(midstate, tail, target_words, n + i, 1) >= 0
            ):
                return n + i
    return -1
