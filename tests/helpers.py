"""Helpers the tests share: mining a block by hand at a low difficulty."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import ClassVar

import redis

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


class RedisServer:
    """A redis-server of a test's own, which the test may stop and start again.

    The append-only file keeps the data across a restart, as in the compose file.
    """

    def __init__(self, directory: str, port: int, *extra: str) -> None:
        self.directory = directory
        self.port = port
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        options = {
            "port": str(self.port),
            "bind": "127.0.0.1",
            "dir": self.directory,
            "appendonly": "yes",
            "appendfsync": "always",
            "save": "",
        }
        arguments = [part for name, value in options.items() for part in (f"--{name}", value)]
        log = os.path.join(self.directory, "redis-server.log")
        with open(log, "ab") as output:
            self.process = subprocess.Popen(
                [shutil.which("redis-server") or "redis-server", *arguments, *self.extra],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop(signal.SIGKILL)
        with open(log, encoding="utf-8", errors="replace") as lines:
            tail = lines.read()[-1500:]
        raise AssertionError(f"redis-server did not start on port {self.port}:\n{tail}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None:
            self.process.send_signal(sig)
            self.process.wait(timeout=10)
            self.process = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def miner_env(redis_url: str, **settings: str) -> dict[str, str]:
    """The environment of a `miner run` process: this one's, the test server, and settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("REDIS_")}
    return {**env, "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1", **settings}


class MinerProcess(subprocess.Popen):  # type: ignore[type-arg]
    """A `miner run` process whose output goes to a file, not a pipe.

    A chatty worker would fill a pipe that nobody reads until the end and block on its next log
    line; a file never fills. `communicate()` waits and returns what was written.
    """

    # Every one started, so that a failed test leaves none running (see conftest).
    started: ClassVar[list[MinerProcess]] = []

    def __init__(self, args: list[str], env: dict[str, str], cpus: set[int] | None = None) -> None:
        MinerProcess.started.append(self)
        log = tempfile.NamedTemporaryFile(prefix="miner-", suffix=".log", delete=False)  # noqa: SIM115
        self.log_path = log.name
        pin = None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))
        super().__init__(
            args, env=env, stdout=log, stderr=subprocess.STDOUT, text=True, preexec_fn=pin
        )
        log.close()

    def communicate(
        self, input: str | None = None, timeout: float | None = None
    ) -> tuple[str, str]:  # type: ignore[override]
        self.wait(timeout)
        return self.output(), ""

    def output(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as log:
            return log.read()


def start_miner(
    redis_url: str, *args: str, cpus: set[int] | None = None, **settings: str
) -> MinerProcess:
    """`miner run` with these arguments and settings; `cpus` pins it to those cores."""
    return MinerProcess(
        [sys.executable, "-m", "miner", "run", *args],
        env=miner_env(redis_url, **settings),
        cpus=cpus,
    )


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def chain_at(url: str, name: str = "main") -> Chain:
    """A chain store on its own connection to the Redis at `url`."""
    return Chain(redis.Redis.from_url(url, decode_responses=True), name)
