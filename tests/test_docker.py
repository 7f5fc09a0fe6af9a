"""The container set-up: the Dockerfile and docker-compose.yml, read as files, and the compose run
reproduced with processes, since the tests have no Docker engine to start containers with."""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from helpers import RedisServer, free_port, wait_for

from miner import config, worker
from miner.chain import Chain

ROOT = Path(__file__).resolve().parent.parent
# What a shell would substitute into the compose file: ${DIFFICULTY} here, DIFFICULTY unset.
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>\w+)(?:(?P<operator>:?-)(?P<default>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_]\w*))"
)


def interpolate(text: str, shell: Mapping[str, str]) -> str:
    """Substitute variables as docker compose does: $$, $VAR, ${VAR}, ${VAR:-d} and ${VAR-d}.

    `:-` takes the default when the variable is unset or empty, `-` only when it is unset.
    """

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        value = shell.get(match["braced"] or match["bare"])
        if match["operator"] == ":-" and not value:
            return str(match["default"])
        if match["operator"] == "-" and value is None:
            return str(match["default"])
        return value or ""

    return _VARIABLE.sub(substitute, text)


def compose(shell: Mapping[str, str] | None = None) -> dict[str, Any]:
    text = (ROOT / "docker-compose.yml").read_text()
    loaded: dict[str, Any] = yaml.safe_load(interpolate(text, shell or {}))
    return loaded


def service_environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's `environment`, in either of compose's forms: a mapping or KEY=VALUE items."""
    given = service.get("environment", {})
    if isinstance(given, list):
        return dict(_assignment(item) for item in given)
    return {key: str(value) for key, value in given.items()}


def _assignment(item: str) -> tuple[str, str]:
    key, _, value = item.partition("=")
    return key, value


def final_stage() -> list[tuple[str, str]]:
    """The instructions of the Dockerfile's last stage as (KEYWORD, arguments), continued lines
    joined and comments left out."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        keyword, _, arguments = (pending + text).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def instruction(keyword: str) -> str:
    """The arguments of the last such instruction, the one that counts."""
    found = [arguments for name, arguments in final_stage() if name == keyword]
    assert found, f"the Dockerfile's final stage has no {keyword}"
    return found[-1]


def image_environment() -> dict[str, str]:
    """What the image's ENV instructions set (KEY=VALUE form)."""
    env: dict[str, str] = {}
    for name, arguments in final_stage():
        if name == "ENV":
            env.update(_assignment(item) for item in shlex.split(arguments))
    return env


def as_processes(argv: list[str]) -> list[str]:
    """An image command line, with the `miner` script replaced by this interpreter's module."""
    assert argv[0] == "miner", argv
    return [sys.executable, "-m", "miner", *argv[1:]]


# --- The compose file ---------------------------------------------------------------------------


def test_compose_redis_keeps_the_chain_on_a_named_volume_and_publishes_no_port() -> None:
    spec = compose()
    redis_service = spec["services"]["redis"]
    assert re.fullmatch(r"redis:7(\.\d+)*(-alpine)?", redis_service["image"])
    command = redis_service["command"]
    command = command if isinstance(command, list) else shlex.split(command)
    assert command[0] == "redis-server"
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "everysec"
    [volume] = redis_service["volumes"]
    name, mount = volume.split(":")[:2]
    assert mount == "/data" and name in spec["volumes"]
    assert "redis-cli" in redis_service["healthcheck"]["test"]
    assert "ping" in redis_service["healthcheck"]["test"]
    assert "ports" not in redis_service


def test_compose_worker_builds_here_restarts_and_waits_for_a_healthy_redis() -> None:
    worker_service = compose()["services"]["worker"]
    assert worker_service["build"] == "."
    assert worker_service["restart"] == "always"
    env = service_environment(worker_service)
    assert env["REDIS_HOST"] == "redis"
    assert float(env["REFRESH_RATE"]) == 1.0
    assert worker_service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert worker_service["deploy"]["replicas"] >= 2
    assert worker_service["stop_grace_period"] == "10s"
    assert "ports" not in worker_service


def test_compose_difficulty_defaults_to_the_workers_own_and_follows_the_shell() -> None:
    def difficulty(shell: dict[str, str]) -> str:
        return service_environment(compose(shell)["services"]["worker"])["DIFFICULTY"]

    assert float(difficulty({})) == config.DEFAULT_DIFFICULTY
    assert float(difficulty({"DIFFICULTY": ""})) == config.DEFAULT_DIFFICULTY
    assert difficulty({"DIFFICULTY": "26"}) == "26"


def test_interpolation_follows_compose_rules() -> None:
    shell = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d} $SET $$SET", shell) == (
        "x d  d x $SET"
    )


# --- The Dockerfile -----------------------------------------------------------------------------


def test_dockerfile_runs_miner_run_as_a_non_root_user() -> None:
    base = instruction("FROM").split()[0]
    assert re.fullmatch(r"python:3\.\d+-slim", base), base
    assert json.loads(instruction("ENTRYPOINT")) == ["miner"]
    assert json.loads(instruction("CMD")) == ["run"]
    user = instruction("USER").split(":")[0]
    assert user not in ("root", "0"), user
    assert instruction("STOPSIGNAL") == "SIGTERM"


def test_dockerfile_health_check_is_miner_health() -> None:
    options, _, command = instruction("HEALTHCHECK").partition("CMD ")
    assert json.loads(command) == ["miner", "health"]
    assert "--interval=" in options


def test_dockerfile_compiles_the_kernels_as_the_user_into_numba_cache_dir() -> None:
    assert image_environment()["NUMBA_CACHE_DIR"].startswith("/")
    stage = final_stage()
    user_at = max(i for i, (keyword, _) in enumerate(stage) if keyword == "USER")
    warm_ups = [i for i, (keyword, text) in enumerate(stage) if "warm_up" in text]
    assert warm_ups and min(warm_ups) > user_at, "the kernels must be compiled as the user"


def test_dockerignore_leaves_only_the_package_in_the_build_context() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"
    kept = [rule[1:].rstrip("/") for rule in rules if rule.startswith("!")]
    assert set(kept) == {"pyproject.toml", "README.md", "miner"}
    assert all((ROOT / path).exists() for path in kept)


# --- The compose run, without Docker -------------------------------------------------------------

# DIFFICULTY given through the compose file's own ${DIFFICULTY}, as a user would set it: at 22, the
# chain grows by a few blocks a second here, so the race lasts long enough for the checks below.
RACE_SHELL = {"DIFFICULTY": "22"}
RACE_HEIGHT = 12


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs a redis-server binary")
def test_compose_replicas_race_to_one_valid_chain(tmp_path: Path) -> None:
    """`docker compose up`, played by processes.

    The redis service is a redis-server with the compose file's own command options. Each replica
    is the image's ENTRYPOINT and CMD (`miner run`, with --until-height added so that the race
    ends), with the image's ENV, and the worker's environment from the compose file exactly,
    except that REDIS_HOST and REDIS_PORT point at the test's server. MINER_ID, which a container
    takes from its hostname (its short container id), is set to a random id of that shape. The
    health check is the image's HEALTHCHECK command, run with the replica's environment as Docker
    runs it inside the container.
    """
    spec = compose(RACE_SHELL)
    redis_command = spec["services"]["redis"]["command"]
    server = RedisServer(str(tmp_path), free_port(), *redis_command[1:])
    server.start()
    try:
        client = redis.Redis(port=server.port, decode_responses=True)
        assert client.config_get("appendfsync")["appendfsync"] == "everysec"
        _race(spec, server.port, client)
    finally:
        server.stop()


def _start(argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        as_processes(argv), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _race(spec: dict[str, Any], port: int, client: redis.Redis) -> None:
    worker_service = spec["services"]["worker"]
    image_env = image_environment()
    # NUMBA_CACHE_DIR names a directory inside the image: here the kernels are cached as in the
    # rest of the test run.
    del image_env["NUMBA_CACHE_DIR"]
    if "NUMBA_CACHE_DIR" in os.environ:
        image_env["NUMBA_CACHE_DIR"] = os.environ["NUMBA_CACHE_DIR"]
    miner_ids = [secrets.token_hex(6) for _ in range(worker_service["deploy"]["replicas"])]
    envs = [
        {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            **image_env,
            **service_environment(worker_service),
            "REDIS_HOST": "127.0.0.1",
            "REDIS_PORT": str(port),
            "MINER_ID": miner_id,
        }
        for miner_id in miner_ids
    ]
    entrypoint = json.loads(instruction("ENTRYPOINT")) + json.loads(instruction("CMD"))
    health = json.loads(instruction("HEALTHCHECK").partition("CMD ")[2])
    replicas = [
        subprocess.Popen(
            [*as_processes(entrypoint), "--until-height", str(RACE_HEIGHT)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for env in envs
    ]
    try:
        store = Chain(client, "main")
        wait_for(
            lambda: all(worker.heartbeat_age(store, m) is not None for m in miner_ids),
            60,
            "a heartbeat from every replica",
        )
        # All at once, while the replicas race or within a heartbeat's lifetime of their end.
        checks = [_start(health, env) for env in envs]
        stats = _start(["miner", "stats", "--json"], envs[0])
        check_outputs = [check.communicate(timeout=60) for check in checks]
        stats_output, stats_errors = stats.communicate(timeout=60)
        outputs = [replica.communicate(timeout=120)[0] for replica in replicas]
    finally:
        for replica in replicas:
            if replica.poll() is None:
                replica.kill()
                replica.wait()

    for check, (out, err), miner_id in zip(checks, check_outputs, miner_ids, strict=True):
        assert check.returncode == 0, out + err
        assert out.startswith(f"healthy: Redis answers; miner {miner_id}'s"), out
    assert stats.returncode == 0, stats_errors
    assert {entry["miner"] for entry in json.loads(stats_output)} == set(miner_ids)
    for replica, output in zip(replicas, outputs, strict=True):
        assert replica.returncode == 0, output
        assert "Traceback" not in output
        assert "DIFFICULTY 22" in output

    verify = subprocess.run(
        as_processes(["miner", "verify"]), env=envs[0], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.startswith("chain main: valid")
    height = store.height()
    assert height >= RACE_HEIGHT
    assert {block.miner for block in store.blocks(1, height)} <= set(miner_ids)
