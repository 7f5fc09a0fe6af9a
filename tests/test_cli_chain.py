"""The chain commands of the CLI (`chain`, `verify`, `submit`, `find`) against a real Redis."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading

import pytest
import redis
from helpers import EASY, failing_nonce, next_block

from miner import cli
from miner.chain import MAX_ENTRY_BYTES, Chain

SETTINGS = ("REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_DB", "CHAIN")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, redis_url: str, chain: Chain) -> Chain:
    """The CLI pointed at the session's server and the `chain` fixture's chain, whatever the
    environment of the test run says.
    """
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("CHAIN", chain.name)
    return chain


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_process(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "miner", *argv],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def grow(chain: Chain, miners: tuple[str, ...]) -> None:
    chain.ensure_genesis(EASY)
    for miner in miners:
        assert chain.commit(next_block(chain, miner))


# --- miner chain ----------------------------------------------------------------------------


def test_chain_json_lists_the_last_blocks_oldest_first_with_their_entry_ids(
    env: Chain, capsys: pytest.CaptureFixture[str]
) -> None:
    grow(env, ("alice",))
    env.submit(["one", "two", "three"])
    assert env.commit(next_block(env, "bob", entries=tuple(env.pending(2))))
    assert env.commit(next_block(env, "carol", entries=tuple(env.pending(1))))

    code, out, err = run(capsys, "chain", "--json")
    assert (code, err) == (0, "")
    blocks = json.loads(out)
    assert [block["height"] for block in blocks] == [0, 1, 2, 3]
    assert [block["miner"] for block in blocks] == ["genesis", "alice", "bob", "carol"]
    assert [block["entries"] for block in blocks] == [[], [], [1, 2], [3]]
    stored = env.blocks(0, 3)
    for shown, block in zip(blocks, stored, strict=True):
        assert shown["hash"] == block.hash_hex
        assert shown["prev_hash"] == block.header.prev_hash_hex
        assert shown["nonce"] == block.header.nonce
        assert shown["time"] == block.header.time
        assert shown["bits"] == f"{block.header.bits:08x}"
    assert [block["prev_hash"] for block in blocks[1:]] == [block["hash"] for block in blocks[:-1]]

    code, out, _ = run(capsys, "chain", "--json", "--last", "2")
    assert [block["height"] for block in json.loads(out)] == [2, 3]


def test_chain_table_shows_one_row_per_block(
    env: Chain, capsys: pytest.CaptureFixture[str]
) -> None:
    grow(env, ("alice", "bob"))
    code, out, _ = run(capsys, "chain", "--last", "0")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 4
    assert lines[0].split()[:5] == ["height", "hash", "miner", "nonce", "bits"]
    tip = env.blocks(2, 2)[0]
    assert lines[3].split()[:5] == [
        "2",
        tip.hash_hex[:16],
        "bob",
        str(tip.header.nonce),
        f"{tip.header.bits:08x}",
    ]
    assert "1970-01-01T00:00:00Z" in lines[1]  # genesis is laid down at time 0


def test_chain_without_genesis_is_one_line_and_exit_1(
    env: Chain, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "chain")
    assert (code, out) == (1, "")
    assert err == f"miner: chain {env.name} has no genesis block yet\n"


@pytest.mark.parametrize("garbage", ["{garbage", b"\xff\xfe{"], ids=["not-json", "not-utf8"])
def test_chain_and_verify_name_the_height_of_a_garbage_record(
    env: Chain, capsys: pytest.CaptureFixture[str], garbage: str | bytes
) -> None:
    grow(env, ("alice", "bob", "carol"))
    env.client.lset(env.blocks_key, 2, garbage)

    code, out, err = run(capsys, "chain", "--json")
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and "height 2: malformed record" in err

    code, out, _ = run(capsys, "verify")
    assert code == 1 and out.count("\n") == 1
    assert "invalid at height 2, rule 'malformed record'" in out
    assert "valid up to height 1" in out


# --- miner verify ---------------------------------------------------------------------------


def test_verify_accepts_a_chain_built_by_competing_committers(
    env: Chain, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rounds, racers = 4, 3
    env.ensure_genesis(EASY)
    stores = [
        Chain(redis.Redis.from_url(redis_url, decode_responses=True), env.name)
        for _ in range(racers)
    ]
    barrier = threading.Barrier(racers, timeout=30)
    wins: list[bool] = []

    def race(store: Chain, miner: str) -> None:
        for _ in range(rounds):
            block = next_block(store, miner)  # every racer mines on the same tip
            barrier.wait()
            wins.append(store.commit(block))
            barrier.wait()

    threads = [
        threading.Thread(target=race, args=(store, f"racer-{i}")) for i, store in enumerate(stores)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wins.count(True) == rounds

    tip = env.tip_hash()
    assert tip is not None
    code, out, err = run(capsys, "verify")
    assert (code, err) == (0, "")
    assert (
        out == f"chain {env.name}: valid, height {rounds} ({rounds + 1} blocks), tip {tip[:16]}\n"
    )


def test_verify_names_the_block_whose_proof_of_work_fails(
    env: Chain, capsys: pytest.CaptureFixture[str]
) -> None:
    grow(env, ("alice", "bob"))
    good = next_block(env, "mallory")
    forged = good.with_nonce(failing_nonce(good))
    env.client.rpush(env.blocks_key, forged.to_record())
    env.client.set(env.tip_key, forged.hash_hex)
    code, out, _ = run(capsys, "verify")
    assert code == 1
    assert out.startswith(f"chain {env.name}: invalid at height 3, rule 'proof of work': ")


# --- miner submit and miner find ------------------------------------------------------------


def test_submitted_entries_are_pending_then_found_in_the_block_that_holds_them(
    env: Chain, capsys: pytest.CaptureFixture[str]
) -> None:
    env.ensure_genesis(EASY)
    code, out, _ = run(capsys, "submit", "hello", "wörld")
    assert (code, out) == (0, "1\n2\n")

    code, out, _ = run(capsys, "find", "2")
    assert (code, out) == (1, "entry 2: pending, not yet in a block\n")

    block = next_block(env, "alice", entries=tuple(env.pending(10)))
    assert [entry.text for entry in block.entries] == ["hello", "wörld"]
    assert env.commit(block)
    code, out, _ = run(capsys, "find", "2")
    assert (code, out) == (0, f"entry 2: height 1, block {block.hash_hex}\n")

    code, out, _ = run(capsys, "find", "3")
    assert (code, out) == (1, f"entry 3: unknown on chain {env.name}\n")


def test_submit_dash_reads_one_entry_per_line_of_stdin(
    env: Chain, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(b"first line\r\nsecond line\nno newline"))
    monkeypatch.setattr(sys, "stdin", stdin)
    code, out, _ = run(capsys, "submit", "-")
    assert (code, out) == (0, "1\n2\n3\n")
    assert [entry.text for entry in env.pending(10)] == ["first line", "second line", "no newline"]


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["ok", ""], b"", "entry 2 of 2: an entry must not be empty"),
        (["ok", "x" * (MAX_ENTRY_BYTES + 1)], b"", f"at most {MAX_ENTRY_BYTES} bytes"),
        (["-"], b"ok\n\xff\xfe\n", "line 2 of standard input: an entry must be UTF-8 text"),
        (["-"], b"ok\n\nafter\n", "line 2 of standard input: an entry must not be empty"),
        (["-"], b"", "standard input is empty"),
        (["ok", "-"], b"", "'-' reads standard input and must be the only TEXT"),
    ],
    ids=["empty", "oversize", "binary-stdin", "blank-line", "empty-stdin", "dash-mixed"],
)
def test_bad_entries_are_refused_with_exit_2_and_nothing_is_stored(
    env: Chain,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    stdin: bytes,
    message: str,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    code, out, err = run(capsys, "submit", *argv)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and message in err
    assert env.pending_count() == 0
    assert env.client.get(env.entry_seq_key) is None


@pytest.mark.parametrize("entry_id", ["abc", "0", "1.5"])
def test_find_refuses_an_id_that_is_not_a_whole_number(
    env: Chain, capsys: pytest.CaptureFixture[str], entry_id: str
) -> None:
    code, out, err = run(capsys, "find", entry_id)
    assert (code, out) == (2, "")
    assert err == (
        f"miner find: argument ID: expected an entry id (a whole number >= 1), got {entry_id!r}\n"
    )


# --- Settings and an unreachable Redis ------------------------------------------------------


@pytest.mark.parametrize("command", [["chain"], ["verify"], ["submit", "x"], ["find", "1"]])
def test_an_unreachable_redis_is_one_line_with_the_address_and_no_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://:secret@127.0.0.1:1/0")
    code, out, err = run(capsys, *command)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "127.0.0.1:1" in err and "secret" not in err


@pytest.mark.parametrize(
    ("setting", "value", "argv"),
    [
        ("REDIS_PORT", "abc", ["verify"]),
        ("CHAIN", "a{b}", ["chain"]),
        ("REDIS_DB", "-1", ["find", "1"]),
    ],
)
def test_bad_settings_exit_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    setting: str,
    value: str,
    argv: list[str],
) -> None:
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(setting, value)
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and f"{setting}={value!r}" in err


def test_the_command_exits_2_without_a_traceback_when_redis_is_unreachable() -> None:
    done = run_process("verify", env={"REDIS_URL": "redis://:secret@127.0.0.1:1/0"})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "redis://:***@127.0.0.1:1/0" in done.stderr
    assert "secret" not in done.stderr and "Traceback" not in done.stderr


def test_the_command_reports_a_garbage_record_without_a_traceback(
    env: Chain, redis_url: str
) -> None:
    grow(env, ("alice", "bob"))
    env.client.lset(env.blocks_key, 1, b"\x00\xff")
    done = run_process("chain", "--chain", env.name, env={"REDIS_URL": redis_url})
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == "miner: height 1: malformed record: not UTF-8 text\n"
