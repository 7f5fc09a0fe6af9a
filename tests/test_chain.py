"""The chain store: block format, the rules, genesis, and the optimistic-lock commit race."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace

import pytest
import redis
from helpers import EASY, failing_nonce, mine, next_block

from miner import pow
from miner.chain import (
    MAX_BLOCK_ENTRIES,
    MAX_ENTRY_BYTES,
    Block,
    Chain,
    CorruptRecord,
    Entry,
    EntryRejected,
    Header,
    InvalidBlock,
    make_genesis,
    merkle_root,
    validate,
)

GENESIS_HEADER = bytes.fromhex(
    "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac7"
    "2c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c"
)


# --- Format ---------------------------------------------------------------------------------


def test_header_parses_and_serializes_bitcoins_genesis_exactly() -> None:
    header = Header.parse(GENESIS_HEADER)
    assert header.version == 1
    assert header.time == 1231006505
    assert header.bits == 0x1D00FFFF
    assert header.nonce == 2083236893
    assert header.serialize() == GENESIS_HEADER
    assert header.hash_hex == "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"


def test_merkle_root_of_bitcoin_block_100000() -> None:
    txids = [
        "8c14f0db3df150123e6f3dbbf30f8b955a8249b62ac1d1ff16284aefa3d06d87",
        "fff2525b8931402dd09222c50775608f75787bd2b87e56995a7bdd30f79702c4",
        "6359f0868171b1d194cbee1af2f16ea598ae8fad666d9b012c8ed2b79a236ec4",
        "e9a66845e05d5abc0ad04ec80f774a7e585c6e8db975962d069a522137b80c1d",
    ]
    root = merkle_root([bytes.fromhex(txid)[::-1] for txid in txids])
    assert root[::-1].hex() == "f3e94742aca4b5ef85488dc37c06c3282295ffec960994b2c0d5ac2a25a95766"


def test_merkle_root_pairs_an_odd_last_leaf_with_itself() -> None:
    a, b, c = (pow.sha256d(bytes([i])) for i in range(3))
    assert merkle_root([a]) == a
    assert merkle_root([a, b, c]) == merkle_root([a, b, c, c])


def test_record_round_trip_keeps_every_field(chain: Chain) -> None:
    chain.ensure_genesis(EASY)
    entries = tuple(chain.pending(0))
    block = next_block(chain, "alice", entries=entries)
    assert Block.from_record(block.to_record(), block.height) == block


def _record(**changes: object) -> str:
    fields = {"header": "00" * 80, "chain": "t", "height": 1, "miner": "m", "extra": 0}
    return json.dumps({**fields, "entries": [], **changes})


@pytest.mark.parametrize(
    "record",
    [
        "not json",
        "[]",
        '{"header": "00"}',
        _record(header="zz" * 80),
        _record(height="1"),
        _record(miner=""),
        _record(extra=-1),
        _record(entries=[[1, ""]]),
        _record(entries=[[0, "id must be positive"]]),
        _record(surplus=True),
    ],
)
def test_malformed_records_are_refused_with_their_height(record: str) -> None:
    with pytest.raises(CorruptRecord) as caught:
        Block.from_record(record, 7)
    assert caught.value.height == 7
    assert caught.value.rule == "malformed record"


# --- Genesis --------------------------------------------------------------------------------


def test_genesis_is_deterministic_from_name_and_difficulty() -> None:
    assert make_genesis("main", 20) == make_genesis("main", 20)
    assert make_genesis("main", 20).hash_hex != make_genesis("other", 20).hash_hex
    assert make_genesis("main", 20).hash_hex != make_genesis("main", 21).hash_hex


def test_genesis_is_created_once_when_many_clients_start_together(redis_url: str) -> None:
    barrier = threading.Barrier(12)
    created: list[bool] = []

    def start() -> None:
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        barrier.wait()
        created.append(Chain(client, "race").ensure_genesis(EASY))

    threads = [threading.Thread(target=start) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    chain = Chain(client, "race")
    assert created.count(True) == 1
    assert chain.height() == 0
    assert chain.verify().ok
    client.flushall()


# --- The commit -----------------------------------------------------------------------------


def test_commit_extends_the_chain_and_publishes_the_tip(chain: Chain) -> None:
    chain.ensure_genesis(EASY)
    pubsub = chain.client.pubsub()
    pubsub.subscribe(chain.channel)
    assert pubsub.get_message(timeout=1)["type"] == "subscribe"
    block = next_block(chain, "alice")
    assert chain.commit(block)
    assert chain.height() == 1
    assert chain.tip_hash() == block.hash_hex
    assert chain.block_by_hash(block.hash_hex) == block
    message = pubsub.get_message(timeout=1)
    assert message is not None
    height, hash_hex, committed_at = message["data"].split(":")
    assert (height, hash_hex) == ("1", block.hash_hex)
    assert abs(float(committed_at) - time.time()) < 5
    assert chain.wins() == {"alice": 1}
    assert chain.verify().ok


def test_a_block_on_a_stale_parent_is_refused(chain: Chain) -> None:
    chain.ensure_genesis(EASY)
    genesis, _ = chain.checked_tip()
    winner = next_block(chain, "alice", parent=genesis)
    stale = next_block(chain, "bob", parent=genesis)
    assert chain.commit(winner)
    assert not chain.commit(stale)
    assert chain.height() == 1
    assert chain.tip_hash() == winner.hash_hex


def _tampered(chain: Chain, kind: str) -> Block:
    good = next_block(chain, "mallory")
    if kind == "proof of work":
        return good.with_nonce(failing_nonce(good))
    if kind == "merkle root":
        return mine(replace(good, header=replace(good.header, merkle_root=bytes(32))))
    if kind == "bits":
        return next_block(chain, "mallory", difficulty=EASY - 1)
    if kind == "height":
        block = replace(good, height=5)
        fixed = replace(block.header, merkle_root=block.computed_merkle_root())
        return mine(replace(block, header=fixed))
    if kind == "time":
        return mine(replace(good, header=replace(good.header, time=int(time.time()) + 3600)))
    raise AssertionError(kind)


@pytest.mark.parametrize("rule", ["proof of work", "merkle root", "bits", "height", "time"])
def test_tampered_blocks_are_refused_by_the_commit(chain: Chain, rule: str) -> None:
    chain.ensure_genesis(EASY)
    block = _tampered(chain, rule)
    with pytest.raises(InvalidBlock) as caught:
        chain.commit(block)
    assert caught.value.rule == rule
    assert chain.height() == 0


def test_a_broken_link_is_refused() -> None:
    genesis = make_genesis("test", EASY)
    other = make_genesis("test", EASY + 1)
    from helpers import mine as mine_block

    from miner.chain import bits_for, make_template

    child = mine_block(make_template("test", other, "m", bits_for(EASY), now=int(time.time())))
    with pytest.raises(InvalidBlock, match="link"):
        validate(child, genesis, {0: EASY}, chain="test", now=time.time())


@pytest.mark.parametrize("rule", ["proof of work", "merkle root", "bits", "height", "time"])
def test_verify_finds_tampered_blocks_written_behind_the_stores_back(
    chain: Chain, rule: str
) -> None:
    chain.ensure_genesis(EASY)
    for miner in ("alice", "bob"):
        assert chain.commit(next_block(chain, miner))
    block = _tampered(chain, rule)
    chain.client.rpush(chain.blocks_key, block.to_record())
    chain.client.set(chain.tip_key, block.hash_hex)
    verdict = chain.verify()
    assert not verdict.ok and verdict.error is not None
    assert verdict.error.rule == rule
    assert verdict.error.height == (5 if rule == "height" else 3) or rule == "height"
    assert verdict.height == 2
    with pytest.raises(InvalidBlock):
        chain.checked_tip()


def test_verify_reports_garbage_and_a_changed_bits_value(chain: Chain) -> None:
    chain.ensure_genesis(EASY)
    for miner in ("alice", "bob", "carol"):
        assert chain.commit(next_block(chain, miner))
    chain.client.lset(chain.blocks_key, 2, "{garbage")
    verdict = chain.verify()
    assert verdict.error is not None and verdict.error.height == 2
    assert verdict.error.rule == "malformed record"


def test_connection_killed_mid_commit_leaves_whole_block_or_none(
    chain: Chain, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain.ensure_genesis(EASY)
    block = next_block(chain, "alice")
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    import miner.chain as chain_module

    real_validate = chain_module.validate

    def validate_then_cut(*args: object, **kwargs: object) -> None:
        real_validate(*args, **kwargs)  # type: ignore[arg-type]
        for entry in admin.client_list():
            if entry["cmd"] in ("hgetall", "lindex"):  # the committing connection, mid-WATCH
                admin.client_kill_filter(_id=entry["id"])

    monkeypatch.setattr(chain_module, "validate", validate_then_cut)
    try:
        won = chain.commit(block)
    except redis.ConnectionError:
        won = chain.tip_hash() == block.hash_hex
    monkeypatch.setattr(chain_module, "validate", real_validate)
    assert chain.verify().ok
    assert chain.height() == (1 if won else 0)
    # Whatever happened, the chain can go on.
    assert chain.commit(next_block(chain, "bob"))
    assert chain.verify().ok


def test_competing_commits_from_threads_have_one_winner_per_round(redis_url: str) -> None:
    rounds, racers = 15, 4
    clients = [redis.Redis.from_url(redis_url, decode_responses=True) for _ in range(racers)]
    chains = [Chain(client, "threads") for client in clients]
    chains[0].ensure_genesis(EASY)
    barrier = threading.Barrier(racers, timeout=30)
    results: list[list[bool]] = [[] for _ in range(racers)]

    def race(i: int) -> None:
        for _ in range(rounds):
            block = next_block(chains[i], f"racer-{i}")
            barrier.wait()
            results[i].append(chains[i].commit(block))
            barrier.wait()

    threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for r in range(rounds):
        assert sum(results[i][r] for i in range(racers)) == 1
    assert chains[0].height() == rounds
    assert chains[0].verify().ok
    clients[0].flushall()


RACER = """
import sys, redis
sys.path.insert(0, sys.argv[4])
from helpers import next_block
from miner.chain import Chain
chain = Chain(redis.Redis.from_url(sys.argv[1], decode_responses=True), "procs")
won = 0
for _ in range(int(sys.argv[3])):
    won += chain.commit(next_block(chain, sys.argv[2]))
print(won)
"""


def test_competing_commits_from_processes_never_fork(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    chain = Chain(client, "procs")
    chain.ensure_genesis(EASY)
    tests_dir = os.path.dirname(__file__)
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, redis_url, f"proc-{i}", "25", tests_dir],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    wins = {f"proc-{i}": int(p.communicate(timeout=120)[0]) for i, p in enumerate(racers)}
    assert all(p.returncode == 0 for p in racers)
    blocks = chain.blocks(1, chain.height())
    # Every commit that reported a win is in the chain, and nothing else is.
    assert sum(wins.values()) == chain.height() == len(blocks)
    for miner, count in wins.items():
        assert sum(block.miner == miner for block in blocks) == count
    assert [block.height for block in blocks] == list(range(1, chain.height() + 1))
    assert chain.verify().ok
    client.flushall()


# --- Difficulty -----------------------------------------------------------------------------


def test_difficulty_change_applies_from_the_next_height_and_history_stays_valid(
    chain: Chain, caplog: pytest.LogCaptureFixture
) -> None:
    chain.ensure_genesis(EASY)
    assert chain.commit(next_block(chain, "alice"))
    assert chain.set_difficulty(EASY, "alice") is None
    change = chain.set_difficulty(EASY + 1.5, "bob")
    assert change is not None and (change.old, change.new, change.from_height) == (
        EASY,
        EASY + 1.5,
        2,
    )
    assert "bob" in caplog.text and "8 to 9.5" in caplog.text
    with pytest.raises(InvalidBlock, match="bits"):
        chain.commit(next_block(chain, "alice", difficulty=EASY))
    assert chain.commit(next_block(chain, "alice", difficulty=EASY + 1.5))
    assert chain.schedule() == {0: EASY, 2: EASY + 1.5}
    assert chain.verify().ok


# --- Entries --------------------------------------------------------------------------------


def test_entries_are_committed_once_and_leave_the_pool(chain: Chain) -> None:
    chain.ensure_genesis(EASY)
    ids = chain.submit(["one", "two", "three"])
    assert ids == [1, 2, 3]
    assert chain.find(2) == ("pending", None)
    entries = tuple(chain.pending(2))
    assert [entry.text for entry in entries] == ["one", "two"]
    block = next_block(chain, "alice", entries=entries)
    assert chain.commit(block)
    assert chain.pending_count() == 1
    status, holder = chain.find(2)
    assert status == "block" and holder == block
    assert chain.find(99) == ("unknown", None)
    # A block that holds entries already taken is refused.
    with pytest.raises(InvalidBlock, match="no longer pending"):
        chain.commit(next_block(chain, "bob", entries=entries))


@pytest.mark.parametrize("bad", ["", "x" * (MAX_ENTRY_BYTES + 1), b"\xff\xfe", "nul\x00byte", 42])
def test_bad_entries_store_nothing(chain: Chain, bad: object) -> None:
    with pytest.raises(EntryRejected):
        chain.submit(["fine", bad])
    assert chain.pending_count() == 0
    assert chain.client.get(chain.entry_seq_key) is None


def test_a_full_block_of_control_characters_commits_and_reads_back(chain: Chain) -> None:
    # JSON writes each of these bytes as six (\u0001): the largest record a block can make.
    chain.ensure_genesis(EASY)
    chain.submit(["\x01" * MAX_ENTRY_BYTES] * MAX_BLOCK_ENTRIES)
    block = next_block(chain, "alice", entries=tuple(chain.pending(MAX_BLOCK_ENTRIES)))
    assert chain.commit(block)
    tip, _ = chain.checked_tip()
    assert tip == block
    assert chain.pending_count() == 0


def test_a_block_that_would_not_read_back_is_refused_and_nothing_is_written(chain: Chain) -> None:
    chain.ensure_genesis(EASY)
    entries = tuple(Entry(n, "x") for n in range(1, MAX_BLOCK_ENTRIES + 2))
    with pytest.raises(InvalidBlock, match=f"{MAX_BLOCK_ENTRIES + 1} entries"):
        chain.commit(next_block(chain, "mallory", entries=entries))
    assert chain.height() == 0


def test_a_lost_exec_reply_counts_as_won_even_once_a_rival_built_on_the_block(
    chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain.ensure_genesis(EASY)
    ours = next_block(chain, "alice")
    real_execute = redis.client.Pipeline.execute
    lost = []

    def execute_then_lose_the_reply(pipe: redis.client.Pipeline, *args: object) -> object:
        result = real_execute(pipe, *args)  # type: ignore[arg-type]
        if not lost:  # our EXEC ran; before we hear back, a rival extends the chain
            lost.append(True)
            assert chain.commit(next_block(chain, "bob"))
            raise redis.WatchError("A ConnectionError occurred while watching one or more keys")
        return result

    monkeypatch.setattr(redis.client.Pipeline, "execute", execute_then_lose_the_reply)
    assert chain.commit(ours)
    assert chain.block_at(1) == ours and chain.height() == 2


def _tamper_entry_index(chain: Chain, fault: str) -> None:
    if fault == "unindexed":
        chain.client.hdel(chain.entry_height_key, 2)
    elif fault == "misindexed":
        chain.client.hset(chain.entry_height_key, 2, 2)
    elif fault == "phantom":
        chain.client.hset(chain.entry_height_key, 9, 1)
    elif fault == "still pending":
        chain.client.zadd(chain.pending_key, {"2": 2})
    else:
        raise AssertionError(fault)


@pytest.mark.parametrize(
    ("fault", "detail"),
    [
        ("unindexed", "entry 2 is in this block, but the entry index has no record of it"),
        ("misindexed", "entry 2 is in this block, but the entry index says height 2"),
        ("phantom", "the entry index puts entry 9 here, but no block holds it"),
        ("still pending", "entry 2 is in this block yet pending: it could be mined twice"),
    ],
)
def test_verify_reports_an_entry_index_or_pool_that_disagrees_with_the_blocks(
    chain: Chain, fault: str, detail: str
) -> None:
    chain.ensure_genesis(EASY)
    chain.submit(["one", "two", "three"])
    assert chain.commit(next_block(chain, "alice", entries=tuple(chain.pending(2))))
    assert chain.commit(next_block(chain, "bob"))
    assert chain.verify().ok
    _tamper_entry_index(chain, fault)
    verdict = chain.verify()
    assert verdict.error is not None
    assert (verdict.error.height, verdict.error.rule, verdict.error.detail) == (
        1,
        "entries",
        detail,
    )
    assert verdict.height == 0


def test_verify_reports_an_entry_in_two_blocks(chain: Chain) -> None:
    chain.ensure_genesis(EASY)
    chain.submit(["once"])
    entries = tuple(chain.pending(1))
    assert chain.commit(next_block(chain, "alice", entries=entries))
    # A second block holding the same entry, written behind the commit's back.
    twice = next_block(chain, "mallory", entries=entries)
    chain.client.rpush(chain.blocks_key, twice.to_record())
    chain.client.set(chain.tip_key, twice.hash_hex)
    verdict = chain.verify()
    assert verdict.error is not None
    assert (verdict.error.height, verdict.error.rule) == (2, "entries")
    assert verdict.error.detail == "entry 1 is in two blocks"
