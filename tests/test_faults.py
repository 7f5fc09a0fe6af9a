"""The race under faults: replicas killed, Redis restarted, a broken network, hostile data, a soak,
fairness measured, and the security of the connection. Run alone with `pytest -m faults`."""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
from helpers import (
    EASY,
    MinerProcess,
    RedisServer,
    chain_at,
    free_port,
    miner_env,
    start_miner,
    wait_for,
)
from proxy import FaultyProxy

from miner import worker
from miner.chain import Block, Chain, bits_for, make_template
from miner.cli import main

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs a redis-server binary"),
]


def _finish(processes: list[MinerProcess], timeout: float = 240) -> list[str]:
    outputs = [process.communicate(timeout=timeout)[0] for process in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-3000:]
        assert "Traceback" not in output, output[-3000:]
    return outputs


def _assert_one_block_per_height(chain: Chain) -> list[Block]:
    """Heights 0..tip each hold exactly one block, linked, and the hash index agrees."""
    blocks = chain.blocks(0, chain.height())
    assert [block.height for block in blocks] == list(range(len(blocks)))
    assert chain.client.hlen(chain.hashes_key) == len(blocks)
    for parent, child in itertools.pairwise(blocks):
        assert child.header.prev_hash == parent.header.hash
    verdict = chain.verify()
    assert verdict.ok, verdict.error
    return blocks


# --- A replica killed --------------------------------------------------------------------------

# Runs `miner run`, but stalls the first block commit between queueing MULTI and sending EXEC,
# after leaving a marker file: the test kills the process right there.
STALLING_MINER = """
import os, sys, time
import redis.client
from miner.cli import main

marker = os.environ["STALL_MARKER"]
execute = redis.client.Pipeline.execute

def stalled(self, raise_on_error=True):
    names = [str(command[0][0]).upper() for command in self.command_stack]
    if self.explicit_transaction and "PUBLISH" in names and not os.path.exists(marker):
        open(marker, "w").close()
        time.sleep(120)
    return execute(self, raise_on_error)

redis.client.Pipeline.execute = stalled
sys.exit(main(["run"] + sys.argv[1:]))
"""


@pytest.mark.parametrize("moment", ["mining", "commit"])
def test_a_replica_killed_leaves_the_others_racing_and_no_fork(
    redis_url: str, client: redis.Redis, tmp_path: Path, moment: str
) -> None:
    chain = Chain(client, "main")
    others = [
        start_miner(redis_url, "--until-height", "25", MINER_ID=f"o{i}", DIFFICULTY="17")
        for i in range(2)
    ]
    marker = tmp_path / "stalled"
    env = miner_env(redis_url, MINER_ID="victim", DIFFICULTY="17", STALL_MARKER=str(marker))
    program = STALLING_MINER if moment == "commit" else "from miner.cli import main; main()"
    args = [] if moment == "commit" else ["run"]
    victim = subprocess.Popen(
        [sys.executable, "-c", program, *args], env=env, stdout=subprocess.DEVNULL
    )
    if moment == "commit":
        wait_for(marker.exists, 120, "the victim to stall inside a commit")
    else:
        wait_for(lambda: worker.heartbeat_age(chain, "victim") is not None, 120, "the victim")
        time.sleep(0.3)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    _finish(others)
    blocks = _assert_one_block_per_height(chain)
    assert len(blocks) >= 26


# --- Redis restarted ---------------------------------------------------------------------------


def test_redis_restarted_under_load_keeps_every_acknowledged_entry(server: RedisServer) -> None:
    miners = [
        start_miner(
            server.url, MINER_ID=f"r{i}", DIFFICULTY="18", REFRESH_RATE="0.2", BLOCK_ENTRIES="20"
        )
        for i in range(2)
    ]
    chain = chain_at(server.url)
    wait_for(lambda: chain.height() >= 2, 120, "mining before the restart")
    acknowledged = chain.submit([f"before restart {i}" for i in range(150)])
    server.stop(signal.SIGKILL)  # no goodbye: only the append-only file survives
    time.sleep(2)
    server.start()
    chain = chain_at(server.url)
    restarted = time.monotonic()
    height = chain.height()
    wait_for(lambda: chain.height() >= height + 3, 60, "the workers to resume")
    resumed_in = time.monotonic() - restarted
    acknowledged += chain.submit([f"after restart {i}" for i in range(50)])
    wait_for(lambda: chain.pending_count() == 0, 60, "the pool to drain")
    for process in miners:
        process.send_signal(signal.SIGTERM)
    outputs = _finish(miners)
    assert all("Redis unreachable" in output for output in outputs)
    assert resumed_in < 15
    blocks = _assert_one_block_per_height(chain)
    recorded = Counter(entry.id for block in blocks for entry in block.entries)
    assert all(recorded[entry_id] == 1 for entry_id in acknowledged)
    assert set(recorded) == set(acknowledged)


# --- A slow or broken network ------------------------------------------------------------------


def test_a_slow_then_broken_network_accepts_no_invalid_block(
    redis_url: str, client: redis.Redis
) -> None:
    proxy = FaultyProxy(int(redis_url.rsplit(":", 1)[1].split("/")[0]))
    chain = Chain(client, "main")
    try:
        miners = [
            start_miner(
                proxy.url,
                "--until-height",
                "30",
                MINER_ID=f"n{i}",
                DIFFICULTY="16",
                REFRESH_RATE="0.3",
            )
            for i in range(2)
        ]
        wait_for(lambda: chain.height() >= 3, 120, "mining through the proxy")
        proxy.delay = 0.03
        time.sleep(1.5)
        for _ in range(5):  # connections cut mid-command, again and again
            proxy.cut()
            time.sleep(0.3)
        proxy.refusing = True
        proxy.cut()
        time.sleep(1.5)
        stalled_at = chain.height()
        proxy.heal()
        outputs = _finish(miners)
    finally:
        proxy.close()
    assert all("Redis unreachable" in output for output in outputs)
    assert chain.height() > stalled_at
    _assert_one_block_per_height(chain)


# --- Hostile or corrupt data -------------------------------------------------------------------


def _inject_tip(chain: Chain, parent: Block, record: str, hash_hex: str) -> bool:
    """Put a record on top of `parent` and point the tip at it, if `parent` is still the tip."""
    with chain.client.pipeline() as pipe:
        try:
            pipe.watch(chain.tip_key)
            if pipe.get(chain.tip_key) != parent.hash_hex:
                return False
            pipe.multi()
            pipe.rpush(chain.blocks_key, record)
            pipe.set(chain.tip_key, hash_hex)
            pipe.execute()
            return True
        except redis.WatchError:
            return False


def _remove_tip(chain: Chain, parent: Block) -> None:
    with chain.client.pipeline() as pipe:
        pipe.rpop(chain.blocks_key)
        pipe.set(chain.tip_key, parent.hash_hex)
        pipe.publish(chain.channel, f"{parent.height}:{parent.hash_hex}:{time.time()}")
        pipe.execute()


def _hostile(chain: Chain, parent: Block, kind: str) -> tuple[str, str, str]:
    """A bad tip record on `parent`, the hash the tip key will name, and the rule it breaks.

    Nothing is mined, so that it is ready before the racing workers move the tip again.
    """
    bits = bits_for(chain.schedule()[0])
    good = make_template(chain.name, parent, "mallory", bits, now=int(time.time()))
    if kind == "proof of work":
        nonce = next(n for n in range(10_000) if not _meets(good.with_nonce(n)))
        bad = good.with_nonce(nonce)
        return bad.to_record(), bad.hash_hex, "proof of work"
    if kind == "malformed record":
        return '{"header": "not hex at all"', good.hash_hex, "malformed record"
    if kind == "bits":
        record = json.loads(good.to_record())
        header = bytearray.fromhex(record["header"])
        header[72:76] = (0x207FFFFF).to_bytes(4, "little")  # the easiest target there is
        record["header"] = header.hex()
        bad = Block.from_record(json.dumps(record), good.height)
        return json.dumps(record), bad.hash_hex, "bits"
    raise AssertionError(kind)


def _meets(block: Block) -> bool:
    from miner import pow

    return pow.hash_to_int(block.header.hash) <= pow.bits_to_target(block.header.bits)


@pytest.mark.parametrize("kind", ["proof of work", "malformed record", "bits"])
def test_workers_refuse_a_hostile_tip_and_recover_once_it_is_removed(
    redis_url: str,
    client: redis.Redis,
    kind: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    chain = Chain(client, "main")
    miners = [
        start_miner(redis_url, MINER_ID=f"h{i}", DIFFICULTY="18", REFRESH_RATE="0.2")
        for i in range(2)
    ]
    wait_for(lambda: chain.height() >= 3, 120, "a few honest blocks")
    for _ in range(100):  # the workers keep extending the tip: catch it still
        parent, _ = chain.checked_tip()
        record, hash_hex, rule = _hostile(chain, parent, kind)
        if _inject_tip(chain, parent, record, hash_hex):
            break
    else:
        raise AssertionError("the tip never held still long enough to replace")
    bad_height = parent.height + 1
    time.sleep(1.5)  # several refresh periods on the bad tip
    assert chain.height() == bad_height, "nobody may build on the bad tip"
    monkeypatch.setenv("REDIS_URL", redis_url)
    assert main(["verify"]) == 1
    out = capsys.readouterr().out
    assert f"height {bad_height}" in out and rule in out
    _remove_tip(chain, parent)
    wait_for(lambda: chain.height() >= bad_height + 3, 60, "the race to go on")
    for process in miners:
        process.send_signal(signal.SIGTERM)
    outputs = _finish(miners)
    for output in outputs:
        refusals = [line for line in output.splitlines() if "refusing to build" in line]
        assert len(refusals) == 1, refusals  # one error, not one per poll
        assert f"height {bad_height}: {rule}" in refusals[0]
    _assert_one_block_per_height(chain)


# --- A soak ------------------------------------------------------------------------------------

SUBMITTER = """
import sys, time, redis
from miner.chain import Chain
chain = Chain(redis.Redis.from_url(sys.argv[1], decode_responses=True), "main")
ids = []
for batch in range(int(sys.argv[2])):
    ids += chain.submit([f"{sys.argv[3]} entry {batch}.{i}" for i in range(10)])
    time.sleep(0.02)
print(" ".join(map(str, ids)))
"""


def test_soak_eight_replicas_300_blocks_2000_entries(redis_url: str, client: redis.Redis) -> None:
    chain = Chain(client, "main")
    miners = [
        start_miner(
            redis_url,
            "--until-height",
            "300",
            MINER_ID=f"s{i}",
            DIFFICULTY="12",
            THREADS="1",
            BLOCK_ENTRIES="25",
            REFRESH_RATE="0.2",
        )
        for i in range(8)
    ]
    wait_for(lambda: chain.height() >= 1, 180, "the soak to start")
    submitters = [
        subprocess.Popen(
            [sys.executable, "-c", SUBMITTER, redis_url, "100", f"sub{i}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    acknowledged = [int(i) for p in submitters for i in p.communicate(timeout=300)[0].split()]
    assert len(acknowledged) == 2000
    outputs = _finish(miners, timeout=600)
    assert all("Traceback" not in output for output in outputs)
    if chain.pending_count():  # entries submitted after the last block: mine them in
        drain = start_miner(
            redis_url,
            "--until-height",
            str(chain.height() + 100),
            MINER_ID="drain",
            DIFFICULTY="12",
            BLOCK_ENTRIES="1000",
        )
        wait_for(lambda: chain.pending_count() == 0, 120, "the pool to drain")
        drain.send_signal(signal.SIGTERM)
        _finish([drain])
    blocks = _assert_one_block_per_height(chain)
    assert len(blocks) >= 301
    recorded = [entry.id for block in blocks for entry in block.entries]
    assert sorted(recorded) == sorted(acknowledged)  # every entry exactly once
    for block in blocks:
        ids = [entry.id for entry in block.entries]
        assert ids == sorted(ids)
    monkeypatch_env = {**os.environ, "REDIS_URL": redis_url}
    verify = subprocess.run(
        [sys.executable, "-m", "miner", "verify"], env=monkeypatch_env, capture_output=True
    )
    assert verify.returncode == 0


# --- Fairness, measured ------------------------------------------------------------------------


def _race(
    redis_url: str, blocks: int, threads: list[int], difficulty: str, *, pinned: bool = False
) -> tuple[Counter[str], dict[str, float]]:
    """Each replica's wins, counted from the height at which all of them were mining, and each
    one's hash rate over the race from its own heartbeat. `pinned` gives replica i core i."""
    cores = sorted(os.sched_getaffinity(0))
    miners = [
        start_miner(
            redis_url,
            "--until-height",
            str(blocks),
            cpus={cores[i % len(cores)]} if pinned else None,
            MINER_ID=f"f{i}",
            DIFFICULTY=difficulty,
            THREADS=str(n),
        )
        for i, n in enumerate(threads)
    ]
    chain = chain_at(redis_url)
    names = [f"f{i}" for i in range(len(threads))]
    # A replica writes its first heartbeat once its kernels are loaded, as it starts mining.
    wait_for(
        lambda: all(worker.heartbeat_age(chain, name) is not None for name in names),
        120,
        "every replica to start",
    )
    all_in = chain.height() + 1
    _finish(miners, timeout=600)
    mined = _assert_one_block_per_height(chain)
    rates = {}
    for name in names:
        beat = chain.client.hgetall(chain.miner_key(name))
        rates[name] = float(beat["hashes"]) / (float(beat["last_seen"]) - float(beat["started"]))
    return Counter(block.miner for block in mined if block.height > all_in), rates


def _chi_square_p_one_dof(observed: list[int], expected: list[float]) -> float:
    statistic = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    return math.erfc(math.sqrt(statistic / 2))  # the chi-square survival function, 1 dof


def test_equal_replicas_win_equal_shares(redis_url: str) -> None:
    # Equal hash power: one thread each, each on a core of its own (where the machine has two),
    # and blocks long enough (about 80 ms here) that the few ms a loser takes to switch tips
    # hardly favour the last winner.
    shares, _ = _race(redis_url, 220, [1, 1], difficulty="22", pinned=True)
    observed = [shares["f0"], shares["f1"]]
    total = sum(observed)
    assert total >= 150
    p = _chi_square_p_one_dof(observed, [total / 2, total / 2])
    assert p > 0.01, f"shares {observed}: chi-square p = {p:.4f}"


def test_twice_the_threads_wins_the_share_of_its_hash_power(redis_url: str) -> None:
    # Three threads on two cores: with the scheduler fair to each thread, the two-thread replica
    # has up to twice the hash power (about 2x on a quiet machine, less when other work takes
    # CPU). Its share of the blocks must match its measured share of the hash power within
    # 3 standard deviations of the binomial, and its power must be clearly the larger.
    shares, rates = _race(redis_url, 320, [2, 1], difficulty="21")
    power = rates["f0"] / (rates["f0"] + rates["f1"])
    n = shares["f0"] + shares["f1"]
    z = (shares["f0"] - n * power) / math.sqrt(n * power * (1 - power))
    detail = f"wins {dict(shares)}, hash rates {rates}, expected share {power:.3f}, z {z:.2f}"
    assert rates["f0"] / rates["f1"] >= 1.3, detail
    assert abs(z) < 3, detail


def test_every_other_replica_switches_to_a_new_tip_within_20_ms_median(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    miners = [
        start_miner(
            redis_url, "--until-height", "80", MINER_ID=f"w{i}", DIFFICULTY="20", THREADS="1"
        )
        for i in range(2)
    ]
    chain = chain_at(redis_url)
    wait_for(lambda: chain.height() >= 75, 300, "most of the race")
    monkeypatch.setenv("REDIS_URL", redis_url)
    assert main(["stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    _finish(miners)
    switches = [m["switch_ms_p50"] for m in stats if m["switch_ms_p50"] is not None]
    assert len(switches) == 2
    assert all(p50 < 20 for p50 in switches), stats


# --- Security ----------------------------------------------------------------------------------


def test_password_and_acl_user_work_and_a_wrong_password_is_one_line(tmp_path: Path) -> None:
    own = RedisServer(
        str(tmp_path),
        free_port(),
        "--requirepass",
        "s3cret-pw",
        "--user",
        "alice",
        "on",
        ">alice-pw",
        "~*",
        "&*",
        "+@all",
    )
    own.start()
    try:
        host = {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(own.port)}
        with_password = subprocess.run(
            [sys.executable, "-m", "miner", "run", "--until-height", "2"],
            env={
                **miner_env("", DIFFICULTY="12", REDIS_PASSWORD="s3cret-pw", **host),
                "REDIS_URL": "",
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert with_password.returncode == 0, with_password.stderr
        assert "s3cret-pw" not in with_password.stdout + with_password.stderr
        acl_url = f"redis://alice:alice-pw@127.0.0.1:{own.port}/0"
        with_user = subprocess.run(
            [sys.executable, "-m", "miner", "run", "--until-height", "4"],
            env=miner_env(acl_url, DIFFICULTY="12"),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert with_user.returncode == 0, with_user.stderr
        assert "alice-pw" not in with_user.stdout + with_user.stderr
        stats = subprocess.run(
            [sys.executable, "-m", "miner", "stats", "--json"],
            env=miner_env(acl_url),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert stats.returncode == 0 and "alice-pw" not in stats.stdout
        wrong = subprocess.run(
            [sys.executable, "-m", "miner", "run"],
            env=miner_env(f"redis://alice:wrong-pw@127.0.0.1:{own.port}/0"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert wrong.returncode == 2
        assert wrong.stderr.count("\n") == 1 and "credentials" in wrong.stderr
        assert "wrong-pw" not in wrong.stderr and "Traceback" not in wrong.stderr
    finally:
        own.stop()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
def test_tls_with_a_throwaway_certificate_authority(tmp_path: Path) -> None:
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tmp_path, check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    )
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    )
    port = free_port()
    # Later options win: the plain port is switched off, and readiness is checked on TLS's.
    own = RedisServer(
        str(tmp_path),
        port,
        "--port",
        "0",
        "--tls-port",
        str(port),
        "--tls-cert-file",
        str(tmp_path / "server.crt"),
        "--tls-key-file",
        str(tmp_path / "server.key"),
        "--tls-ca-cert-file",
        str(tmp_path / "ca.crt"),
        "--tls-auth-clients",
        "no",
    )
    own.start()
    try:
        url = f"rediss://127.0.0.1:{port}/0"
        ca = str(tmp_path / "ca.crt")
        run = subprocess.run(
            [sys.executable, "-m", "miner", "run", "--until-height", "3"],
            env=miner_env(url, DIFFICULTY="12", REDIS_CA_CERT=ca),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        verify = subprocess.run(
            [sys.executable, "-m", "miner", "verify"],
            env=miner_env(url, REDIS_CA_CERT=ca),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert verify.returncode == 0, verify.stderr
        untrusted = subprocess.run(
            [sys.executable, "-m", "miner", "verify"],
            env=miner_env(url),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert untrusted.returncode == 2 and "Traceback" not in untrusted.stderr
    finally:
        own.stop()


def test_records_are_validated_and_size_limited_before_they_are_stored(chain: Chain) -> None:
    from miner.chain import MAX_ENTRY_BYTES, EntryRejected

    chain.ensure_genesis(EASY)
    with pytest.raises(EntryRejected):
        chain.submit(["x" * (MAX_ENTRY_BYTES + 1)])
    chain.client.rpush(chain.blocks_key, "x" * 5_000_000)
    verdict = chain.verify()
    assert verdict.error is not None and verdict.error.rule == "malformed record"
