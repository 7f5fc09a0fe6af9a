"""Shared fixtures: a real redis-server per test session (pytest-redis), on a free port.

fakeredis stands in only on a machine with no redis-server binary and CI unset; under CI a
missing server fails the run instead of skipping what needs it. The GPU kernel's tests run on
numba's CUDA simulator unless NUMBA_ENABLE_CUDASIM=0 asks for a real device.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from helpers import MinerProcess, RedisServer, free_port

from miner.chain import Chain

REDIS_SERVER = shutil.which("redis-server")

if REDIS_SERVER is None and os.environ.get("CI"):
    raise pytest.UsageError(
        "CI is set but redis-server is not installed: the tests need a real Redis server"
    )

if REDIS_SERVER is not None:
    from pytest_redis import factories

    redis_proc = factories.redis_proc(executable=REDIS_SERVER, port=None)


def pytest_configure(config: pytest.Config) -> None:
    # numba reads NUMBA_ENABLE_CUDASIM once, on its first import, which no test module has done
    # yet at this point. The simulator replaces only `numba.cuda`; the CPU kernels are untouched.
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a Redis server for this test session (never the shared one on 6379)."""
    if REDIS_SERVER is not None:
        proc = request.getfixturevalue("redis_proc")
        assert int(proc.port) != 6379
        yield f"redis://{proc.host}:{proc.port}/0"
        return
    from fakeredis import TcpFakeServer

    port = _free_port()
    server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{port}/0"
    server.shutdown()


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the session's server, flushed after each test."""
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    connection.flushall()
    yield connection
    connection.flushall()
    connection.close()


@pytest.fixture
def chain(client: redis.Redis) -> Chain:
    return Chain(client, "test")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own (append-only file on), to stop and restart."""
    own = RedisServer(str(tmp_path), free_port())
    own.start()
    yield own
    own.stop()


@pytest.fixture(autouse=True)
def _no_miner_outlives_its_test() -> Iterator[None]:
    yield
    while MinerProcess.started:
        process = MinerProcess.started.pop()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
