"""Settings: defaults, composition of the Redis address, and one clear line per bad value."""

from __future__ import annotations

import subprocess
import sys

import pytest

from miner import config
from miner.chain import redacted
from miner.cli import main


def test_defaults() -> None:
    settings = config.load({})
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.refresh_rate == 1.0
    assert settings.difficulty == config.DEFAULT_DIFFICULTY
    assert settings.backend == "auto"
    assert settings.chain == "main"
    assert settings.threads >= 1
    assert settings.miner_id


def test_host_port_password_and_db_compose_the_url() -> None:
    env = {
        "REDIS_HOST": "redis",
        "REDIS_PORT": "6380",
        "REDIS_PASSWORD": "p@ss:/x",
        "REDIS_DB": "3",
    }
    url = config.load(env).redis_url
    assert url == "redis://:p%40ss%3A%2Fx@redis:6380/3"
    assert "p%40ss" not in redacted(url) and redacted(url) == "redis://:***@redis:6380/3"


def test_redis_url_wins_over_host_and_flags_win_over_environment() -> None:
    env = {"REDIS_URL": "rediss://user:pw@h:1/2", "REDIS_HOST": "ignored", "DIFFICULTY": "20"}
    settings = config.load(env, {"DIFFICULTY": "22.5"})
    assert settings.redis_url == "rediss://user:pw@h:1/2"
    assert settings.difficulty == 22.5
    assert redacted(settings.redis_url) == "rediss://user:***@h:1/2"


BAD = [
    ("DIFFICULTY", "abc"),
    ("DIFFICULTY", "0"),
    ("DIFFICULTY", "256"),
    ("DIFFICULTY", "nan"),
    ("REFRESH_RATE", "0"),
    ("REFRESH_RATE", "-1"),
    ("REFRESH_RATE", "soon"),
    ("REDIS_PORT", "70000"),
    ("REDIS_PORT", "abc"),
    ("REDIS_DB", "-1"),
    ("REDIS_HOST", "bad host"),
    ("REDIS_URL", "http://example"),
    ("THREADS", "0"),
    ("POW_BACKEND", "gpu-magic"),
    ("MINER_ID", "bad id"),
    ("MINER_ID", "genesis"),
    ("CHAIN", "a{b}"),
    ("LOG_LEVEL", "LOUD"),
    ("LOG_FORMAT", "xml"),
    ("BLOCK_ENTRIES", "-1"),
    ("REDIS_CA_CERT", "/no/such/file.pem"),
]


@pytest.mark.parametrize(("name", "value"), BAD)
def test_each_bad_setting_is_one_line_naming_it(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(name, value)
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert name in err and ("expected" in err or "allowed" in err)
    assert "Traceback" not in err


@pytest.mark.parametrize(("name", "value"), [("DIFFICULTY", "-3"), ("REDIS_PORT", "x")])
def test_a_bad_setting_exits_2_from_a_real_process(name: str, value: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "miner", "run"],
        env={"PATH": "/usr/bin:/bin", name: value},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and name in run.stderr
    assert "Traceback" not in run.stderr


def test_a_password_never_shows_in_an_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2@127.0.0.1:1/0")
    assert main(["stats"]) == 2
    err = capsys.readouterr().err
    assert "hunter2" not in err and "127.0.0.1:1" in err and err.count("\n") == 1


def test_health_answers_an_unreachable_redis_with_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    assert main(["health"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("unhealthy: cannot reach Redis") and out.count("\n") == 1
