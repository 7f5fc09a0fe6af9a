"""The worker as its users run it: `miner run` processes racing, stopping, surviving Redis."""

from __future__ import annotations

import signal
import time

import pytest
import redis
from helpers import RedisServer, chain_at, mine, start_miner, wait_for

from miner import worker
from miner.chain import Chain, bits_for, make_template
from miner.cli import main

pytestmark = pytest.mark.skipif(
    __import__("shutil").which("redis-server") is None, reason="needs a redis-server binary"
)


def test_backoff_doubles_from_a_tenth_of_a_second_up_to_five() -> None:
    backoff = worker.Backoff()
    delays = [backoff.next_delay() for _ in range(9)]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert delays[-1] == 5.0 and max(delays) == 5.0
    backoff.reset()
    assert backoff.next_delay() == 0.1


def test_tip_notices_parse_and_garbage_is_ignored() -> None:
    notice = worker.parse_notice("7:00ab:1796316005.25")
    assert notice == worker.Notice(7, "00ab", 1796316005.25)
    assert worker.parse_notice("garbage") is None


def test_three_replicas_race_to_height_30(redis_url: str, client: redis.Redis) -> None:
    miners = [
        start_miner(
            redis_url, "--until-height", "30", MINER_ID=f"m{i}", DIFFICULTY="20", THREADS="1"
        )
        for i in range(3)
    ]
    outputs = [process.communicate(timeout=240)[0] for process in miners]
    for process, output in zip(miners, outputs, strict=True):
        assert process.returncode == 0, output
        assert "Traceback" not in output
    chain = Chain(client, "main")
    assert chain.height() >= 30
    blocks = chain.blocks(1, chain.height())
    assert [block.height for block in blocks] == list(range(1, chain.height() + 1))
    winners = {block.miner for block in blocks}
    assert winners == {"m0", "m1", "m2"}, f"every miner should win at least once: {winners}"
    assert chain.verify().ok
    assert sum(chain.wins().values()) == chain.height()


def test_sigterm_while_mining_exits_0_within_a_second(redis_url: str, client: redis.Redis) -> None:
    process = start_miner(redis_url, MINER_ID="stopper", DIFFICULTY="40", THREADS="1")
    chain = Chain(client, "main")
    wait_for(lambda: worker.heartbeat_age(chain, "stopper") is not None, 60, "the first heartbeat")
    time.sleep(0.3)  # well inside the search loop by now
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=10)[0]
    assert process.returncode == 0, output
    assert time.monotonic() - sent < 1.0
    assert "stopped after" in output


def test_workers_resume_after_redis_restarts(server: RedisServer) -> None:
    miners = [
        start_miner(
            server.url, "--until-height", "10", MINER_ID=f"r{i}", DIFFICULTY="21", THREADS="1"
        )
        for i in range(2)
    ]
    chain = chain_at(server.url)
    wait_for(lambda: chain.height() >= 1, 120, "the first block before the outage")
    server.stop()
    time.sleep(3)
    server.start()
    outputs = [process.communicate(timeout=180)[0] for process in miners]
    for process, output in zip(miners, outputs, strict=True):
        assert process.returncode == 0, output
        assert "Redis unreachable" in output
        assert "Traceback" not in output
    chain = chain_at(server.url)
    assert chain.height() >= 10
    assert chain.verify().ok


def test_demo_finishes_with_a_validchain_at(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--replicas", "2", "--blocks", "4", "--difficulty", "14"]) == 0
    out = capsys.readouterr().out
    assert "chain demo verified: 5 blocks" in out
    assert out.count("  height ") == 4
    assert "demo-1" in out and "demo-2" in out


def test_stats_and_health_read_the_heartbeats(
    redis_url: str,
    client: redis.Redis,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    process = start_miner(redis_url, "--until-height", "5", MINER_ID="beater", DIFFICULTY="14")
    assert process.wait(timeout=120) == 0
    monkeypatch.setenv("REDIS_URL", redis_url)
    assert main(["stats", "--json"]) == 0
    import json

    [stats] = json.loads(capsys.readouterr().out)
    assert stats["miner"] == "beater" and stats["blocks"] == 5 and stats["share"] == 1.0
    for key in ("hashes_per_second", "races_lost", "switch_ms_p50", "switch_ms_p99", "last_seen"):
        assert key in stats
    monkeypatch.setenv("MINER_ID", "beater")
    assert main(["health"]) == 0
    monkeypatch.setenv("MINER_ID", "nobody")
    assert main(["health"]) == 1
    assert "nobody" in capsys.readouterr().out


def test_without_a_tip_notice_polling_finds_the_new_tip(
    redis_url: str, client: redis.Redis
) -> None:
    # The worker hashes slowly (hashlib, ~1 MH/s: a block every minute or so at 26), the test
    # fast (numba), so the test's block nearly always comes first; if not, it tries again.
    process = start_miner(
        redis_url,
        MINER_ID="poller",
        DIFFICULTY="26",
        REFRESH_RATE="0.3",
        LOG_LEVEL="DEBUG",
        POW_BACKEND="hashlib",
    )
    chain = Chain(client, "main")
    wait_for(lambda: "mining height 1 " in process.output(), 60, "mining on genesis")
    # Commit a block whose notice goes to a channel nobody listens on: only the poll every
    # REFRESH_RATE seconds can tell the worker about it.
    silent = Chain(client, "main")
    silent.channel = "{main}:nobody-listens"
    for _ in range(5):
        tip, schedule = chain.checked_tip()
        template = make_template(
            "main", tip, "outsider", bits_for(schedule[0]), now=int(time.time())
        )
        block = mine(template, backend="numba")
        if silent.commit(block):
            break
    else:
        raise AssertionError("the worker kept winning against numba")
    wanted = f"mining height {block.height + 1} "
    wait_for(lambda: wanted in process.output(), 5, "the worker to poll the new tip")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
