"""Compiled nonce-search kernels: each scans a nonce range of one header for the lowest winner.

Every kernel has the same signature, so that `miner.pow` can dispatch to any of them:

    scan(midstate, tail, target_words, start, count) -> lowest winning nonce, or -1

- midstate: uint32[8], the SHA-256 state after the header's first 64 bytes;
- tail: uint32[3], header bytes 64..76 (end of merkle root, time, bits) as big-endian words;
- target_words: uint32[8], the target as little-endian 32-bit limbs (limb 7 most significant);
- start, count: the nonce range [start, start + count), within [0, 2**32].
"""
