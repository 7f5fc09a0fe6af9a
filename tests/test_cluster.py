"""The race on Redis Cluster: every key of a chain shares one hash tag, so the optimistic-lock
commit runs unchanged on the slot's primary, and replicas find it through the cluster client."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from helpers import RedisServer, free_port, miner_env, start_miner

from miner.chain import Chain

pytestmark = pytest.mark.skipif(
    shutil.which("redis-cli") is None or shutil.which("redis-server") is None,
    reason="needs redis-server and redis-cli",
)


def _cluster_port() -> int:
    """A free port whose cluster bus port (10000 higher, at most 65535) is free too."""
    for _ in range(200):
        port = free_port()
        if port > 55535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise AssertionError("no free pair of ports for a cluster node")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[RedisServer]]:
    """Three primaries of a fresh Redis Cluster sharing the 16384 slots."""
    nodes: list[RedisServer] = []
    try:
        for i in range(3):
            directory = tmp_path / f"node{i}"
            directory.mkdir()
            nodes.append(RedisServer(str(directory), _cluster_port(), "--cluster-enabled", "yes"))
            nodes[-1].start()
        addresses = [f"127.0.0.1:{node.port}" for node in nodes]
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for node in nodes:
            client = redis.Redis(port=node.port, decode_responses=True)
            deadline = time.monotonic() + 30
            while client.cluster("info")["cluster_state"] != "ok":
                assert time.monotonic() < deadline, "the cluster did not come up"
                time.sleep(0.1)
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def test_replicas_race_on_redis_cluster(cluster: list[RedisServer]) -> None:
    # Each replica is pointed at a different node; the client follows the slot's redirections.
    miners = [
        start_miner(
            node.url,
            "--until-height",
            "12",
            MINER_ID=f"c{i}",
            DIFFICULTY="19",
            THREADS="1",
            REDIS_CLUSTER="yes",
        )
        for i, node in enumerate(cluster[:2])
    ]
    for process in miners:
        output = process.communicate(timeout=180)[0]
        assert process.returncode == 0, output[-3000:]
        assert "Traceback" not in output
    client = redis.RedisCluster.from_url(cluster[2].url, decode_responses=True)
    chain = Chain(client, "main")
    assert chain.height() >= 12
    assert chain.verify().ok
    assert sum(chain.wins().values()) == chain.height()
    verify = subprocess.run(
        [sys.executable, "-m", "miner", "verify"],
        env=miner_env(cluster[2].url, REDIS_CLUSTER="yes"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stderr
