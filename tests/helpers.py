"""Helpers the tests share: mining a block by hand at a low difficulty."""

from __future__ import annotations

import time

from miner import pow
from miner.chain import Block, Chain, Entry, bits_for, make_template

EASY = 8.0  # about 256 hashes a block: instant even on the hashlib backend


def mine(block: Block, *, backend: str = "hashlib") -> Block:
    """The block with the lowest nonce that meets its bits."""
    target = pow.bits_to_target(block.header.bits)
    nonce = pow.search(block.header.serialize(), target, backend=backend, threads=1)
    assert nonce is not None
    return block.with_nonce(nonce)


def next_block(
    chain: Chain,
    miner: str,
    *,
    difficulty: float = EASY,
    entries: tuple[Entry, ...] = (),
    parent: Block | None = None,
) -> Block:
    """A mined block on the current tip (or on `parent`)."""
    if parent is None:
        parent, _ = chain.checked_tip()
    template = make_template(
        chain.name, parent, miner, bits_for(difficulty), now=int(time.time()), entries=entries
    )
    return mine(template)


def failing_nonce(block: Block) -> int:
    """A nonce whose hash does not meet the block's target."""
    target = pow.bits_to_target(block.header.bits)
    for nonce in range(1000):
        if pow.hash_to_int(block.with_nonce(nonce).header.hash) > target:
            return nonce
    raise AssertionError("every nonce won")
