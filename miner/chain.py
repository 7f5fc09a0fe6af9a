"""The chain: blocks and headers, the rules a block must meet, and the chain store on Redis.

Every key of one chain shares the hash tag `{name}`, so that WATCH/MULTI works unchanged on Redis
Cluster. Records are compact JSON: the 80-byte header as hex and the payload it commits to.

    {name}:tip           the tip's block hash (reversed hex, as Bitcoin shows hashes)
    {name}:blocks        list of block records; index = height
    {name}:hashes        hash: block hash -> height
    {name}:difficulty    hash: first height -> DIFFICULTY required from that height on
    {name}:pending       sorted set: entry id -> submission sequence (the pool, oldest first)
    {name}:entry:text    hash: entry id -> text, while pending
    {name}:entry:height  hash: entry id -> height of the block that holds it
    {name}:entry:seq     the last entry id handed out
    {name}:wins          hash: miner id -> blocks it won
    {name}:miners        sorted set: miner id -> last heartbeat (unix seconds)
    {name}:miner:<id>    hash: that miner's heartbeat (expires when it stops beating)
    {name}:tips          pub/sub channel: "height:hash:unix time of the commit" of each new tip
"""

from __future__ import annotations

import json
import logging
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import redis

from miner import pow

log = logging.getLogger(__name__)

VERSION = 1
# A block's time may run ahead of the clock of whoever checks it by this much: replicas share a
# network and roughly synchronised clocks, so Bitcoin's two hours would be far too loose.
MAX_FUTURE_SECONDS = 120
MAX_MINER_ID = 64
# Entries are UTF-8 text; 4 KiB holds a log line, a JSON document or a signature comfortably.
MAX_ENTRY_BYTES = 4096
# The most entries one block may hold, whatever BLOCK_ENTRIES asks (bounds a record at ~24 MiB).
MAX_BLOCK_ENTRIES = 1000
# JSON writes a control character as \u00XX, six bytes for each byte of an entry's text.
MAX_RECORD_BYTES = MAX_BLOCK_ENTRIES * (MAX_ENTRY_BYTES * 6 + 64) + 4096
GENESIS_MINER = "genesis"


class ChainError(Exception):
    """Base of every error the chain raises."""


class InvalidBlock(ChainError):
    """A block breaks one of the chain's rules; `rule` names it, `height` says where."""

    def __init__(self, height: int, rule: str, detail: str) -> None:
        super().__init__(f"height {height}: {rule}: {detail}")
        self.height = height
        self.rule = rule
        self.detail = detail


class CorruptRecord(InvalidBlock):
    """What the store holds is not a well-formed record (garbage written behind our back)."""

    def __init__(self, height: int, detail: str) -> None:
        super().__init__(height, "malformed record", detail)


class NoGenesis(ChainError):
    """The chain has no blocks: not created yet, or its store was emptied."""


class EntryRejected(ChainError, ValueError):
    """An entry that cannot be stored: empty, too large, or not text."""


def canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """Bitcoin's merkle tree: sha256d of concatenated pairs, an odd last node paired with itself."""
    level = list(leaves)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [pow.sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


@dataclass(frozen=True)
class Header:
    """The 80-byte Bitcoin block header; hashes are kept in internal (little-endian) byte order."""

    version: int
    prev_hash: bytes
    merkle_root: bytes
    time: int
    bits: int
    nonce: int

    _FORMAT = struct.Struct("<i32s32sIII")

    def serialize(self) -> bytes:
        return self._FORMAT.pack(
            self.version, self.prev_hash, self.merkle_root, self.time, self.bits, self.nonce
        )

    @classmethod
    def parse(cls, data: bytes) -> Header:
        if len(data) != pow.HEADER_SIZE:
            raise ValueError(f"a header is {pow.HEADER_SIZE} bytes, got {len(data)}")
        return cls(*cls._FORMAT.unpack(data))

    @property
    def hash(self) -> bytes:
        return pow.sha256d(self.serialize())

    @property
    def hash_hex(self) -> str:
        """The block hash as Bitcoin shows it: byte-reversed hex."""
        return self.hash[::-1].hex()

    @property
    def prev_hash_hex(self) -> str:
        return self.prev_hash[::-1].hex()


@dataclass(frozen=True)
class Entry:
    """One piece of data recorded by the chain: an id handed out at submission, and its text."""

    id: int
    text: str

    def leaf(self) -> bytes:
        return pow.sha256d(canonical_json([self.id, self.text]).encode())


def check_entry_text(text: object) -> str:
    """The text if it may be stored as an entry; EntryRejected naming the limit otherwise."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise EntryRejected("an entry must be UTF-8 text; got bytes that are not") from None
    if not isinstance(text, str):
        raise EntryRejected(f"an entry must be text, got {type(text).__name__}")
    if not text:
        raise EntryRejected("an entry must not be empty")
    if "\x00" in text:
        raise EntryRejected("an entry must be text; it contains a NUL byte")
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_ENTRY_BYTES:
        raise EntryRejected(f"an entry may hold at most {MAX_ENTRY_BYTES} bytes, got {size}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise EntryRejected("an entry must be valid UTF-8 text (it has a lone surrogate)") from None
    return text


@dataclass(frozen=True)
class Block:
    """A header and the payload its merkle root commits to.

    The first merkle leaf (Bitcoin's coinbase) commits to the chain's name, the height, the
    miner and an extra nonce; the other leaves are the entries, in order. Because the payload
    names the miner, no two replicas ever search the same header.
    """

    header: Header
    chain: str
    height: int
    miner: str
    extra: int = 0
    entries: tuple[Entry, ...] = field(default=())

    @property
    def hash_hex(self) -> str:
        return self.header.hash_hex

    def coinbase(self) -> bytes:
        fields = {"chain": self.chain, "height": self.height, "miner": self.miner}
        return pow.sha256d(canonical_json({**fields, "extra": self.extra}).encode())

    def computed_merkle_root(self) -> bytes:
        return merkle_root([self.coinbase(), *(entry.leaf() for entry in self.entries)])

    def with_nonce(self, nonce: int) -> Block:
        return replace(self, header=replace(self.header, nonce=nonce))

    def as_dict(self) -> dict[str, Any]:
        """The block as plain JSON values, named and shown as Bitcoin Core's `getblock` shows them
        (hashes byte-reversed, bits as 8 hex digits, time in Unix seconds); entries by id only.
        """
        return {
            "height": self.height,
            "hash": self.hash_hex,
            "prev_hash": self.header.prev_hash_hex,
            "merkle_root": self.header.merkle_root[::-1].hex(),
            "version": self.header.version,
            "time": self.header.time,
            "bits": f"{self.header.bits:08x}",
            "nonce": self.header.nonce,
            "miner": self.miner,
            "extra": self.extra,
            "entries": [entry.id for entry in self.entries],
        }

    def to_record(self) -> str:
        return canonical_json(
            {
                "header": self.header.serialize().hex(),
                "chain": self.chain,
                "height": self.height,
                "miner": self.miner,
                "extra": self.extra,
                "entries": [[entry.id, entry.text] for entry in self.entries],
            }
        )

    @classmethod
    def from_record(cls, record: str | bytes | None, height: int) -> Block:
        """Parse a stored record; CorruptRecord says what is wrong with one that is not well formed.

        Only the form is checked here; the rules (`validate`) are checked separately.
        """
        if record is None:
            raise CorruptRecord(height, "the record is missing")
        if len(record) > MAX_RECORD_BYTES:
            raise CorruptRecord(height, f"the record is {len(record)} bytes, over the limit")
        if isinstance(record, bytes):
            # json.loads would guess UTF-16 or UTF-32 from the first bytes; records are UTF-8.
            try:
                record = record.decode("utf-8")
            except UnicodeDecodeError:
                raise CorruptRecord(height, "not UTF-8 text") from None
        try:
            data = json.loads(record)
        except ValueError as error:
            raise CorruptRecord(height, f"not JSON ({error})") from None
        if not isinstance(data, dict) or set(data) != {
            "header",
            "chain",
            "height",
            "miner",
            "extra",
            "entries",
        }:
            raise CorruptRecord(height, "not a block record (wrong fields)")
        try:
            header = Header.parse(bytes.fromhex(data["header"]))
            entries = tuple(_parse_entry(item) for item in data["entries"])
        except (ValueError, TypeError, EntryRejected) as error:
            raise CorruptRecord(height, str(error)) from None
        if not (
            isinstance(data["chain"], str)
            and _is_int(data["height"])
            and isinstance(data["miner"], str)
            and 0 < len(data["miner"]) <= MAX_MINER_ID
            and _is_int(data["extra"])
            and 0 <= data["extra"] < 2**64
        ):
            raise CorruptRecord(height, "a field has the wrong type or size")
        if len(entries) > MAX_BLOCK_ENTRIES:
            raise CorruptRecord(height, f"{len(entries)} entries, over {MAX_BLOCK_ENTRIES}")
        return cls(header, data["chain"], data["height"], data["miner"], data["extra"], entries)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_entry(item: object) -> Entry:
    if not (isinstance(item, list) and len(item) == 2 and _is_int(item[0]) and item[0] > 0):
        raise ValueError("an entry must be [id, text] with a positive id")
    return Entry(item[0], check_entry_text(item[1]))


def required_difficulty(schedule: dict[int, float], height: int) -> float:
    """The DIFFICULTY in force at a height: the latest change at or below it."""
    starts = [start for start in schedule if start <= height]
    if not starts:
        raise InvalidBlock(height, "difficulty", "the chain records no difficulty for this height")
    return schedule[max(starts)]


def bits_for(difficulty: float) -> int:
    return pow.target_to_bits(pow.target_for_difficulty(difficulty))


def make_genesis(chain: str, difficulty: float) -> Block:
    """The first block, the same for every replica given the chain's name and difficulty.

    Genesis is laid down, not mined: its proof of work is not checked, its fields are.
    """
    header = Header(VERSION, bytes(32), bytes(32), 0, bits_for(difficulty), 0)
    block = Block(header, chain, 0, GENESIS_MINER)
    return replace(block, header=replace(header, merkle_root=block.computed_merkle_root()))


def make_template(
    chain: str,
    parent: Block,
    miner: str,
    bits: int,
    *,
    now: int,
    extra: int = 0,
    entries: Iterable[Entry] = (),
) -> Block:
    """An unmined block on `parent`: the nonce is left 0 for the search to fill in."""
    header = Header(VERSION, parent.header.hash, bytes(32), max(now, parent.header.time), bits, 0)
    block = Block(header, chain, parent.height + 1, miner, extra, tuple(entries))
    return replace(block, header=replace(header, merkle_root=block.computed_merkle_root()))


def validate(
    block: Block, parent: Block, schedule: dict[int, float], *, chain: str, now: float
) -> None:
    """Check a block against its parent and the chain's rules; InvalidBlock names the first broken.

    The rules: it belongs to this chain; it links to its parent's hash; its height is the parent's
    plus one; its merkle root commits to its payload; its bits are what the chain requires at its
    height; its hash meets the target in its bits; its time is not before its parent's, nor more
    than MAX_FUTURE_SECONDS ahead of `now`; its entries have distinct ids.
    """
    height = block.height
    if block.chain != chain:
        raise InvalidBlock(height, "chain", f"block of chain {block.chain!r}, expected {chain!r}")
    if block.header.prev_hash != parent.header.hash:
        raise InvalidBlock(
            height,
            "link",
            f"prev_hash {block.header.prev_hash_hex[:16]}... is not the parent's hash "
            f"{parent.hash_hex[:16]}...",
        )
    if height != parent.height + 1:
        raise InvalidBlock(height, "height", f"expected {parent.height + 1}, got {height}")
    if block.header.version != VERSION:
        raise InvalidBlock(height, "version", f"expected {VERSION}, got {block.header.version}")
    if block.miner == GENESIS_MINER:
        raise InvalidBlock(height, "miner", f"the miner id {GENESIS_MINER!r} is reserved")
    ids = [entry.id for entry in block.entries]
    if len(set(ids)) != len(ids):
        raise InvalidBlock(height, "entries", "an entry appears twice")
    if block.header.merkle_root != block.computed_merkle_root():
        raise InvalidBlock(height, "merkle root", "the merkle root does not match the payload")
    required = required_difficulty(schedule, height)
    if block.header.bits != bits_for(required):
        raise InvalidBlock(
            height,
            "bits",
            f"bits 0x{block.header.bits:08x}, but DIFFICULTY {required:g} requires "
            f"0x{bits_for(required):08x}",
        )
    target = pow.bits_to_target(block.header.bits)
    if pow.hash_to_int(block.header.hash) > target:
        raise InvalidBlock(height, "proof of work", f"hash {block.hash_hex[:16]}... > target")
    if block.header.time < parent.header.time:
        raise InvalidBlock(
            height, "time", f"time {block.header.time} is before its parent's {parent.header.time}"
        )
    if block.header.time > now + MAX_FUTURE_SECONDS:
        raise InvalidBlock(
            height,
            "time",
            f"time {block.header.time} is more than {MAX_FUTURE_SECONDS} s in the future",
        )


def validate_genesis(block: Block, schedule: dict[int, float], *, chain: str) -> None:
    expected = make_genesis(chain, required_difficulty(schedule, 0))
    if block != expected:
        raise InvalidBlock(0, "genesis", "the genesis block is not the one this chain defines")


@dataclass(frozen=True)
class Verdict:
    """The outcome of walking the whole chain."""

    height: int
    error: InvalidBlock | None
    # The hash of the last block walked, when the whole chain is valid.
    tip_hash: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class DifficultyChange:
    old: float
    new: float
    from_height: int


def _parse_schedule(raw: dict[Any, Any]) -> dict[int, float]:
    try:
        schedule = {int(start): float(value) for start, value in raw.items()}
    except ValueError:
        raise CorruptRecord(0, "the difficulty schedule holds a non-number") from None
    for start, value in schedule.items():
        if start < 0 or not 0 < value < 256:
            raise CorruptRecord(start, f"the difficulty schedule holds {value!r} at {start}")
    return schedule


class Chain:
    """One chain in Redis: read it, commit to it, verify it."""

    # How many records `verify` reads per round trip.
    _BATCH = 500

    def __init__(self, client: redis.Redis, name: str = "main") -> None:
        self.client = client
        self.name = name
        self.clustered = isinstance(client, redis.RedisCluster)
        tag = "{" + name + "}"
        self.tip_key = f"{tag}:tip"
        self.blocks_key = f"{tag}:blocks"
        self.hashes_key = f"{tag}:hashes"
        self.difficulty_key = f"{tag}:difficulty"
        self.pending_key = f"{tag}:pending"
        self.entry_text_key = f"{tag}:entry:text"
        self.entry_height_key = f"{tag}:entry:height"
        self.entry_seq_key = f"{tag}:entry:seq"
        self.wins_key = f"{tag}:wins"
        self.miners_key = f"{tag}:miners"
        self.channel = f"{tag}:tips"

    def miner_key(self, miner: str) -> str:
        return "{" + self.name + "}:miner:" + miner

    # --- Genesis and difficulty ------------------------------------------------------------

    def ensure_genesis(self, difficulty: float) -> bool:
        """Create the genesis block unless the chain exists; True if this call created it.

        Safe when many replicas start together: the first transaction to run wins, the others
        see a tip and leave it.
        """
        genesis = make_genesis(self.name, difficulty)
        with self.client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(self.tip_key)
                if pipe.exists(self.tip_key):
                    return False
                pipe.multi()
                pipe.rpush(self.blocks_key, genesis.to_record())
                pipe.hset(self.hashes_key, genesis.hash_hex, 0)
                pipe.hset(self.difficulty_key, "0", repr(float(difficulty)))
                pipe.set(self.tip_key, genesis.hash_hex)
                pipe.execute()
            except redis.WatchError:
                return False
        log.info("chain %s: genesis %s created", self.name, genesis.hash_hex[:16])
        return True

    def schedule(self) -> dict[int, float]:
        return _parse_schedule(self.client.hgetall(self.difficulty_key))

    def set_difficulty(self, difficulty: float, miner: str) -> DifficultyChange | None:
        """Require `difficulty` from the next height on, if the chain requires another now.

        Returns the change made, or None when the chain already requires it.
        """
        for _ in range(10):  # each retry means a block was committed meanwhile
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(self.tip_key, self.difficulty_key, self.blocks_key)
                    height = pipe.llen(self.blocks_key)
                    schedule = _parse_schedule(pipe.hgetall(self.difficulty_key))
                    old = required_difficulty(schedule, height)
                    if bits_for(old) == bits_for(difficulty):
                        return None
                    pipe.multi()
                    pipe.hset(self.difficulty_key, str(height), repr(float(difficulty)))
                    pipe.execute()
                except redis.WatchError:
                    continue
            log.warning(
                "miner %s: chain %s difficulty changes from %g to %g at height %d",
                miner,
                self.name,
                old,
                difficulty,
                height,
            )
            return DifficultyChange(old, difficulty, height)
        raise ChainError("the chain kept moving while changing its difficulty; try again")

    # --- Reading ---------------------------------------------------------------------------

    def height(self) -> int:
        """The tip's height (-1 for a chain with no genesis yet)."""
        return int(self.client.llen(self.blocks_key)) - 1

    def tip_hash(self) -> str | None:
        value = self.client.get(self.tip_key)
        return None if value is None else str(value)

    def wins(self) -> dict[str, int]:
        """Blocks won by each miner."""
        return {
            str(miner): int(count) for miner, count in self.client.hgetall(self.wins_key).items()
        }

    def block_at(self, height: int) -> Block | None:
        if height < 0:
            return None
        try:
            record = self.client.lindex(self.blocks_key, height)
        except UnicodeDecodeError:
            record = self.client.execute_command(
                "LINDEX", self.blocks_key, height, NEVER_DECODE=True
            )
        return None if record is None else Block.from_record(record, height)

    def block_by_hash(self, hash_hex: str) -> Block | None:
        height = self.client.hget(self.hashes_key, hash_hex)
        return None if height is None else self.block_at(int(height))

    def blocks(self, start: int, stop: int) -> list[Block]:
        """Blocks at heights start..stop inclusive (both >= 0), in one round trip."""
        records: Sequence[str | bytes]
        try:
            records = self.client.lrange(self.blocks_key, start, stop)
        except UnicodeDecodeError:
            records = self._raw_records(start, stop)
        return [Block.from_record(record, start + i) for i, record in enumerate(records)]

    def last(self, count: int) -> list[Block]:
        """The last `count` blocks (all of them for 0), oldest first, in one round trip."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        try:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.llen(self.blocks_key)
                pipe.lrange(self.blocks_key, -count, -1)  # -0 is 0: the whole list
                length, records = pipe.execute()
        except UnicodeDecodeError:
            # Blocks are only ever appended, so absolute heights read later name the same records.
            length = int(self.client.llen(self.blocks_key))
            first = max(length - count, 0) if count else 0
            records = self._raw_records(first, length - 1)
        first = length - len(records)
        return [Block.from_record(record, first + i) for i, record in enumerate(records)]

    def _raw_records(self, start: int, stop: int) -> list[bytes]:
        """Records as stored, undecoded: the client decodes replies as UTF-8 and fails on a whole
        reply when one record is not UTF-8, so this rereads them for `from_record` to name it.
        """
        records = self.client.execute_command(
            "LRANGE", self.blocks_key, start, stop, NEVER_DECODE=True
        )
        return list(records)

    def checked_tip(self) -> tuple[Block, dict[int, float]]:
        """The tip, validated against its parent, and the difficulty schedule: one round trip.

        Raises InvalidBlock (CorruptRecord for garbage) naming the height and rule, so that a
        worker never builds on a tip it cannot trust.
        """
        with self.client.pipeline(transaction=True) as pipe:
            pipe.get(self.tip_key)
            pipe.llen(self.blocks_key)
            pipe.lrange(self.blocks_key, -2, -1)
            pipe.hgetall(self.difficulty_key)
            tip_hash, length, records, raw_schedule = pipe.execute()
        if length == 0 or tip_hash is None:
            raise NoGenesis(f"chain {self.name} has no genesis block yet")
        schedule = _parse_schedule(raw_schedule)
        height = length - 1
        tip = Block.from_record(records[-1], height)
        if tip.height != height:
            raise InvalidBlock(height, "height", f"the record at {height} says {tip.height}")
        if tip.hash_hex != tip_hash:
            raise InvalidBlock(height, "tip", "the tip key does not name the last block")
        if height == 0:
            validate_genesis(tip, schedule, chain=self.name)
        else:
            parent = Block.from_record(records[0], height - 1)
            validate(tip, parent, schedule, chain=self.name, now=time.time())
        return tip, schedule

    # --- The commit ------------------------------------------------------------------------

    def commit(self, block: Block) -> bool:
        """Append a mined block if its parent is still the tip; False if another replica won.

        The race, between replicas A and B that both found a block on tip T:

            A: WATCH tip   GET tip = T   validate   MULTI ... EXEC -> ok, tip = A's block
            B: WATCH tip   GET tip = T   validate   MULTI ... EXEC -> nil (tip changed): False

        Whoever's EXEC runs first wins; the other's transaction is discarded whole, so no height
        ever has two blocks and nobody wins on a stale parent. A block is never retried: its
        parent is stale once it loses. MULTI/EXEC also makes the write all-or-nothing, so a
        connection lost mid-commit leaves the whole block or none of it; the block index then
        tells which (checked here, so that a lost reply is not mistaken for a lost race).
        """
        ids = [entry.id for entry in block.entries]
        record = block.to_record()
        # A record that readers refuse would halt every replica at this height, so what is
        # written must read back: entry count, texts and size within the limits.
        Block.from_record(record, block.height)
        try:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.watch(self.tip_key, self.difficulty_key)
                if pipe.get(self.tip_key) != block.header.prev_hash_hex:
                    return False
                try:
                    self._check_before_commit(pipe, block)
                except InvalidBlock:
                    # These reads are not one snapshot: a rival's commit may land between them
                    # and make the block look invalid. Then we simply lost the race.
                    if pipe.get(self.tip_key) != block.header.prev_hash_hex:
                        return False
                    raise
                pipe.multi()
                pipe.rpush(self.blocks_key, record)
                pipe.hset(self.hashes_key, block.hash_hex, block.height)
                pipe.set(self.tip_key, block.hash_hex)
                if ids:
                    pipe.zrem(self.pending_key, *ids)
                    pipe.hdel(self.entry_text_key, *ids)
                    pipe.hset(self.entry_height_key, mapping=dict.fromkeys(ids, block.height))
                pipe.hincrby(self.wins_key, block.miner, 1)
                notice = f"{block.height}:{block.hash_hex}:{time.time():.6f}"
                if not self.clustered:
                    pipe.publish(self.channel, notice)
                pipe.execute()
            if self.clustered:
                # A cluster transaction may hold only keyed commands, so the notice follows EXEC;
                # if this process dies in between, the others still poll the new tip.
                self.client.publish(self.channel, notice)
            return True
        except redis.WatchError:
            # Not the tip: a rival may already have built on our block by the time we look.
            return bool(self.client.hexists(self.hashes_key, block.hash_hex))

    def _check_before_commit(self, pipe: redis.client.Pipeline, block: Block) -> None:
        parent = Block.from_record(pipe.lindex(self.blocks_key, -1), block.height - 1)
        schedule = _parse_schedule(pipe.hgetall(self.difficulty_key))
        validate(block, parent, schedule, chain=self.name, now=time.time())
        # Only a commit takes entries out of the pool, and a commit moves the tip, so entries
        # pending now stay pending until EXEC unless the WATCH fires.
        ids = [str(entry.id) for entry in block.entries]
        if ids and None in pipe.zmscore(self.pending_key, ids):
            raise InvalidBlock(block.height, "entries", "an entry is no longer pending")

    # --- Verification ----------------------------------------------------------------------

    def verify(self, now: float | None = None) -> Verdict:
        """Walk the chain from genesis and check every rule; the first broken one is reported.

        Then check that the entry index and the pool agree with the blocks walked (rule
        "entries"): `find` answers from the index, and the pool feeds the next templates.
        """
        now = time.time() if now is None else now
        with self.client.pipeline(transaction=True) as pipe:
            pipe.get(self.tip_key)
            pipe.llen(self.blocks_key)
            pipe.hgetall(self.difficulty_key)
            tip_hash, length, raw_schedule = pipe.execute()
        if length == 0:
            return Verdict(-1, InvalidBlock(0, "genesis", f"chain {self.name} has no blocks"))
        parent: Block | None = None
        seen: dict[int, int] = {}  # entry id -> height of the block that holds it
        try:
            schedule = _parse_schedule(raw_schedule)
            for start in range(0, length, self._BATCH):
                for block in self.blocks(start, min(start + self._BATCH, length) - 1):
                    self._check_walked(block, parent, schedule, seen, now)
                    parent = block
        except InvalidBlock as error:
            return Verdict(error.height - 1, error)
        assert parent is not None
        if parent.hash_hex != tip_hash:
            bad_tip = InvalidBlock(parent.height, "tip", "the tip key does not name the last block")
            return Verdict(parent.height - 1, bad_tip)
        try:
            self._check_entry_index(seen, parent.height)
        except InvalidBlock as error:
            return Verdict(error.height - 1, error)
        return Verdict(parent.height, None, parent.hash_hex)

    def _check_entry_index(self, seen: dict[int, int], tip_height: int) -> None:
        """Each entry the blocks hold is indexed at its block's height and no longer pending; the
        index names no entry that those blocks lack. The lowest height at fault is reported.

        Blocks committed after the walk began are not in `seen`, so index records above the
        walked tip are left alone; the blocks below it never change, so their records must match.
        """
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hgetall(self.entry_height_key)
            pipe.zrange(self.pending_key, 0, -1)
            raw_index, pending = pipe.execute()
        faults: list[InvalidBlock] = []
        index: dict[int, int] = {}
        for key, value in raw_index.items():
            try:
                index[int(key)] = int(value)
            except ValueError:
                detail = f"the entry index holds {key!r} -> {value!r}, not two ids"
                faults.append(InvalidBlock(tip_height, "entries", detail))
        for entry_id, height in seen.items():
            if index.get(entry_id) != height:
                indexed = index.get(entry_id)
                says = "has no record of it" if indexed is None else f"says height {indexed}"
                detail = f"entry {entry_id} is in this block, but the entry index {says}"
                faults.append(InvalidBlock(height, "entries", detail))
        for entry_id, height in index.items():
            if height <= tip_height and entry_id not in seen:
                detail = f"the entry index puts entry {entry_id} here, but no block holds it"
                faults.append(InvalidBlock(max(height, 0), "entries", detail))
        for member in pending:
            held_at = seen.get(int(member)) if str(member).isdigit() else None
            if held_at is not None:
                detail = f"entry {member} is in this block yet pending: it could be mined twice"
                faults.append(InvalidBlock(held_at, "entries", detail))
        if faults:
            raise min(faults, key=lambda fault: fault.height)

    def _check_walked(
        self,
        block: Block,
        parent: Block | None,
        schedule: dict[int, float],
        seen: dict[int, int],
        now: float,
    ) -> None:
        expected_height = 0 if parent is None else parent.height + 1
        if block.height != expected_height:
            raise InvalidBlock(
                expected_height, "height", f"the record says {block.height}, expected it here"
            )
        if parent is None:
            validate_genesis(block, schedule, chain=self.name)
        else:
            validate(block, parent, schedule, chain=self.name, now=now)
        for entry in block.entries:
            if entry.id in seen:
                raise InvalidBlock(block.height, "entries", f"entry {entry.id} is in two blocks")
            seen[entry.id] = block.height

    # --- Entries ---------------------------------------------------------------------------

    def submit(self, texts: Sequence[Any]) -> list[int]:
        """Add entries to the pending pool; their ids, in order. All are checked before any is
        stored, so a bad one stores nothing.
        """
        checked = []
        for number, text in enumerate(texts, 1):
            try:
                checked.append(check_entry_text(text))
            except EntryRejected as error:
                raise EntryRejected(f"entry {number} of {len(texts)}: {error}") from None
        if not checked:
            return []
        last = int(self.client.incrby(self.entry_seq_key, len(checked)))
        ids = list(range(last - len(checked) + 1, last + 1))
        with self.client.pipeline(
            transaction=True
        ) as pipe:  # MULTI/EXEC: the texts and the pool together
            pipe.hset(self.entry_text_key, mapping=dict(zip(ids, checked, strict=True)))
            pipe.zadd(self.pending_key, {str(i): i for i in ids})
            pipe.execute()
        return ids

    def pending(self, limit: int) -> list[Entry]:
        """Up to `limit` pending entries, oldest first."""
        if limit <= 0:
            return []
        ids = [int(str(i)) for i in self.client.zrange(self.pending_key, 0, limit - 1)]
        if not ids:
            return []
        texts = self.client.hmget(self.entry_text_key, ids)
        return [Entry(i, str(text)) for i, text in zip(ids, texts, strict=True) if text is not None]

    def pending_count(self) -> int:
        return int(self.client.zcard(self.pending_key))

    def find(self, entry_id: int) -> tuple[str, Block | None]:
        """Where an entry is: ("block", the block), ("pending", None) or ("unknown", None)."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hget(self.entry_height_key, entry_id)
            pipe.zscore(self.pending_key, entry_id)
            height, score = pipe.execute()
        if height is not None:
            return "block", self.block_at(int(height))
        if score is not None:
            return "pending", None
        return "unknown", None


def connect(
    url: str, *, ca_cert: str | None = None, cluster: bool = False, timeout: float = 5.0
) -> redis.Redis:
    """A redis-py client for a redis:// or rediss:// URL, with bounded timeouts.

    With `cluster`, a Redis Cluster client that follows the cluster's redirections from the node
    in the URL. Responses are decoded as UTF-8 text: every record the chain stores is text.
    """
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
    }
    if ca_cert and url.startswith("rediss://"):
        options["ssl_ca_certs"] = ca_cert
    if cluster:
        # Chain and Worker use the commands both clients share; typing knows them apart.
        return redis.RedisCluster.from_url(url, **options)  # type: ignore[return-value]
    return redis.Redis.from_url(url, health_check_interval=30, **options)


def redacted(url: str) -> str:
    """A Redis URL with any password replaced by ***, for logs and errors."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user, has_password, _ = credentials.partition(":")
    if not has_password:  # userinfo without a colon may well be a password: hide it all
        return f"{scheme}://***@{host}"
    return f"{scheme}://{user}:***@{host}"
