"""Entries end to end: submitted text lands in exactly one block, never lost, never twice.

Real `miner run` and `miner submit` processes against a real redis-server: submitters and racing
replicas at once, a replica killed while it holds entries, and Redis restarted under them.
"""

from __future__ import annotations

import collections
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from helpers import RedisServer, chain_at, miner_env, start_miner, wait_for

from miner import worker
from miner.chain import MAX_ENTRY_BYTES, Block, Chain

pytestmark = pytest.mark.skipif(
    __import__("shutil").which("redis-server") is None, reason="needs a redis-server binary"
)

# Low enough that a block takes tens of milliseconds on one thread, high enough that the chain
# does not grow by thousands of empty blocks while the entries trickle in.
EASY = "18"
# Far out of reach: a replica at this difficulty is still searching when the test kills it.
HARD = "40"

# Submits `count` entries named `prefix-n` through Chain.submit, `batch` at a time, and prints
# "id text" for each as soon as Redis has acknowledged it.
SUBMITTER = """
import sys
from miner.chain import Chain, connect
url, prefix, count, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
chain = Chain(connect(url), "main")
for start in range(0, count, batch):
    texts = [f"{prefix}-{n}" for n in range(start, min(start + batch, count))]
    for entry_id, text in zip(chain.submit(texts), texts, strict=True):
        print(entry_id, text, flush=True)
"""


class Replica:
    """A `miner run` process with a name, whose output (a file, never a pipe) can be read as it
    comes."""

    def __init__(self, url: str, miner_id: str, *args: str, **settings: str) -> None:
        self.process = start_miner(url, *args, MINER_ID=miner_id, THREADS="1", **settings)

    @property
    def output(self) -> str:
        return self.process.output()

    def wait(self) -> int:
        return self.process.wait(timeout=30)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        return self.wait()


@pytest.fixture
def spawn() -> Iterator[Callable[..., Replica]]:
    """Start replicas that are killed at the end of the test, whatever became of it."""
    started: list[Replica] = []

    def start(url: str, miner_id: str, *args: str, **settings: str) -> Replica:
        started.append(Replica(url, miner_id, *args, **settings))
        return started[-1]

    yield start
    for replica in started:
        if replica.process.poll() is None:
            replica.stop(signal.SIGKILL)


def _cli(url: str, *argv: str | bytes, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "miner", *argv],
        input=stdin,
        env=miner_env(url),
        capture_output=True,
        timeout=60,
    )


def _submit_via_cli(url: str, texts: list[str], acked: dict[int, str]) -> None:
    """`miner submit -`, one entry per line; the ids it prints name the lines in order."""
    result = _cli(url, "submit", "-", stdin="".join(f"{text}\n" for text in texts).encode())
    assert result.returncode == 0, result.stderr
    ids = [int(line) for line in result.stdout.decode().split()]
    acked.update(zip(ids, texts, strict=True))


def _stop_all(replicas: list[Replica]) -> None:
    for replica in replicas:
        replica.process.send_signal(signal.SIGTERM)
    for replica in replicas:  # one signal each: a second one stops a replica at once
        assert replica.wait() == 0, replica.output
        assert "Traceback" not in replica.output, replica.output


def _assert_each_entry_once(chain: Chain, acked: dict[int, str]) -> list[Block]:
    """Every acknowledged entry is in exactly one block, with its text, in submission order
    within the block; the pool is empty; the chain verifies; `find` agrees with the blocks.
    """
    blocks = chain.blocks(0, chain.height())
    holders = collections.defaultdict(list)
    for block in blocks:
        ids = [entry.id for entry in block.entries]
        assert ids == sorted(set(ids)), f"height {block.height}: ids out of order: {ids}"
        for entry in block.entries:
            holders[entry.id].append(block.height)
            assert entry.text == acked.get(entry.id), f"entry {entry.id} at {block.height}"
    twice = {entry_id: heights for entry_id, heights in holders.items() if len(heights) > 1}
    assert not twice, f"entries in more than one block: {twice}"
    assert set(holders) == set(acked), f"lost: {sorted(set(acked) - set(holders))[:20]}"
    assert chain.pending_count() == 0
    assert chain.client.hlen(chain.entry_text_key) == 0
    verdict = chain.verify()
    assert verdict.ok, verdict.error
    for entry_id, (height,) in holders.items():
        status, block = chain.find(entry_id)
        assert status == "block" and block is not None and block.height == height
    return blocks


def test_2000_entries_from_4_submitters_land_once_while_3_replicas_race(
    redis_url: str, client: redis.Redis, spawn: Callable[..., Replica]
) -> None:
    chain = Chain(client, "main")
    settings = {"DIFFICULTY": EASY, "BLOCK_ENTRIES": "50", "REFRESH_RATE": "0.2"}
    replicas = [
        spawn(redis_url, f"racer{i}", "--until-height", "100000", **settings) for i in range(3)
    ]
    wait_for(lambda: len(worker.live_miners(chain)) == 3, 60, "all three replicas at work")

    acked: dict[int, str] = {}

    def submit_via_cli(prefix: str) -> None:
        for start in range(0, 500, 125):
            texts = [f"{prefix}-{n} ünï" for n in range(start, start + 125)]
            _submit_via_cli(redis_url, texts, acked)

    # Two submitters run `miner submit -` four times, 125 lines each ...
    cli_submitters = [threading.Thread(target=submit_via_cli, args=(f"cli{k}",)) for k in range(2)]
    # ... and two call Chain.submit ten entries at a time.
    python_submitters = [
        subprocess.Popen(
            [sys.executable, "-c", SUBMITTER, redis_url, f"py{k}", "500", "10"],
            env=miner_env(redis_url),
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(2)
    ]
    for thread in cli_submitters:
        thread.start()
    for process in python_submitters:
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0
        for line in out.splitlines():
            entry_id, text = line.split(" ", 1)
            acked[int(entry_id)] = text
    for thread in cli_submitters:
        thread.join(timeout=120)
    assert len(acked) == 2000
    assert sorted(acked) == list(range(1, 2001))  # one sequence, no id handed out twice

    wait_for(lambda: chain.pending_count() == 0, 120, "the pool to drain")
    _stop_all(replicas)

    blocks = _assert_each_entry_once(chain, acked)
    assert max(len(block.entries) for block in blocks) <= 50
    assert len({block.miner for block in blocks if block.entries}) >= 2, "no race took place"


def test_a_replica_killed_holding_entries_loses_none_and_another_mines_each_once(
    redis_url: str, client: redis.Redis, spawn: Callable[..., Replica]
) -> None:
    chain = Chain(client, "main")
    texts = [f"held-{n}" for n in range(250)]
    acked = dict(zip(chain.submit(texts), texts, strict=True))

    doomed = spawn(redis_url, "doomed", DIFFICULTY=HARD, BLOCK_ENTRIES="100", LOG_LEVEL="DEBUG")
    wait_for(lambda: "(100 entries)" in doomed.output, 60, "a template holding 100 entries")
    assert worker.heartbeat_age(chain, "doomed") is not None
    assert doomed.stop(signal.SIGKILL) == -signal.SIGKILL
    assert chain.height() == 0
    assert chain.pending_count() == 250
    assert [entry.id for entry in chain.pending(1000)] == sorted(acked)
    assert chain.client.hlen(chain.entry_height_key) == 0

    drainer = spawn(redis_url, "drainer", DIFFICULTY=EASY, BLOCK_ENTRIES="100")
    wait_for(lambda: chain.pending_count() == 0, 60, "the pool to drain")
    _stop_all([drainer])
    blocks = _assert_each_entry_once(chain, acked)
    assert {block.miner for block in blocks if block.entries} == {"drainer"}


def test_every_acknowledged_entry_lands_once_across_a_redis_restart(
    server: RedisServer, spawn: Callable[..., Replica]
) -> None:
    chain = chain_at(server.url)
    texts = [f"before-{n}" for n in range(200)]
    acked = dict(zip(chain.submit(texts), texts, strict=True))
    settings = {"DIFFICULTY": "20", "BLOCK_ENTRIES": "5", "REFRESH_RATE": "0.2"}
    replicas = [
        spawn(server.url, f"survivor{i}", "--until-height", "100000", **settings) for i in range(2)
    ]
    wait_for(lambda: chain.client.hlen(chain.entry_height_key) > 0, 60, "a block of entries")

    server.stop(signal.SIGKILL)  # appendfsync always: every acknowledged write is on disk
    time.sleep(1)  # the outage
    server.start()
    chain = chain_at(server.url)
    with chain.client.pipeline() as pipe:  # one snapshot: the replicas are back at work
        pipe.zcard(chain.pending_key)
        pipe.hlen(chain.entry_height_key)
        waiting, mined = pipe.execute()
    # Nothing acknowledged is gone, and the restart came while entries were still waiting.
    assert (waiting + mined, waiting > 0) == (200, True)
    texts = [f"after-{n}" for n in range(100)]
    acked.update(zip(chain.submit(texts), texts, strict=True))

    wait_for(lambda: chain.pending_count() == 0, 90, "the pool to drain after the restart")
    _stop_all(replicas)
    assert any("Redis unreachable" in replica.output for replica in replicas)
    _assert_each_entry_once(chain, acked)


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["submit", "x" * (MAX_ENTRY_BYTES + 1)], b"", f"at most {MAX_ENTRY_BYTES} bytes"),
        (["submit", "fine", ""], b"", "entry 2 of 2: an entry must not be empty"),
        ([b"submit", b"\xff\xfe binary"], b"", "must be valid UTF-8 text"),
        (["submit", "-"], b"fine\nnul\x00byte\n", "line 2 of standard input: an entry must be"),
    ],
    ids=["oversize", "empty", "binary-argument", "nul-on-stdin"],
)
def test_refused_entries_exit_2_in_one_line_and_write_nothing(
    redis_url: str, client: redis.Redis, argv: list[str | bytes], stdin: bytes, message: str
) -> None:
    chain = Chain(client, "main")
    assert chain.submit(["already here"]) == [1]
    result = _cli(redis_url, *argv, stdin=stdin)
    assert (result.returncode, result.stdout) == (2, b"")
    err = result.stderr.decode()
    assert err.count("\n") == 1 and message in err and "nothing was stored" in err, err
    assert client.get(chain.entry_seq_key) == "1"
    assert client.zrange(chain.pending_key, 0, -1) == ["1"]
    assert client.hgetall(chain.entry_text_key) == {"1": "already here"}


def test_find_follows_an_entry_from_pending_to_its_block(
    redis_url: str, client: redis.Redis, spawn: Callable[..., Replica]
) -> None:
    chain = Chain(client, "main")
    submitted = _cli(redis_url, "submit", "find me")
    assert (submitted.returncode, submitted.stdout) == (0, b"1\n")
    pending = _cli(redis_url, "find", "1")
    assert (pending.returncode, pending.stdout) == (1, b"entry 1: pending, not yet in a block\n")

    replica = spawn(redis_url, "finder", "--until-height", "1", DIFFICULTY=EASY)
    assert replica.wait() == 0, replica.output
    block = chain.block_at(1)
    assert block is not None and [entry.id for entry in block.entries] == [1]
    found = _cli(redis_url, "find", "1")
    assert found.returncode == 0
    assert found.stdout.decode() == f"entry 1: height 1, block {block.hash_hex}\n"
