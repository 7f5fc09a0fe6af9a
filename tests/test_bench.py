"""Hash-rate measurement and DIFFICULTY tuning (`miner bench`), and the benchmark scripts
`benchmarks/bench_pow.py` and `benchmarks/bench_race.py`.

Runs are tiny (a fraction of a second; the race, a few blocks) and no figure is asserted: the
machine is shared, so only the shape of the output and the arithmetic are tested.
"""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from miner import bench, cli, pow

TINY = "0.2"
ROOT = Path(__file__).resolve().parent.parent
KEYS = {"backend", "threads", "seconds", "hashes", "hashes_per_second", "compile_seconds"}
# The compiled kernel every CPU can run: fast enough for tiny runs, present on any machine.
SOME = "numba-scalar"


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["bench", *args])
    out, err = capsys.readouterr()
    return code, out, err


def json_lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


def test_bench_prints_a_table_with_a_row_per_thread_count(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_cli(capsys, "--backend", SOME, "--threads", "1,2", "--seconds", TINY)
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split() == ["backend", "threads", "MH/s", "compile", "s"]
    assert [row.split()[:2] for row in rows] == [[SOME, "1"], [SOME, "2"]]
    assert err == ""  # not a terminal: no progress line


def test_bench_json_prints_one_object_per_backend_and_thread_count(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_cli(
        capsys, "--backend", SOME, "--threads", "1,2", "--seconds", TINY, "--json"
    )
    assert code == 0
    rows = json_lines(out)
    assert [(row["backend"], row["threads"]) for row in rows] == [(SOME, 1), (SOME, 2)]
    for row in rows:
        assert set(row) == KEYS
        assert isinstance(row["hashes"], int) and row["hashes"] > 0


def test_bench_repeat_reports_median_between_min_and_max(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_cli(
        capsys, "--backend", SOME, "--threads", "1", "--seconds", "0.1", "--repeat", "3", "--json"
    )
    assert code == 0
    (row,) = json_lines(out)
    assert set(row) == KEYS | {"median", "min", "max"}
    assert 0 < row["min"] <= row["median"] <= row["max"]  # type: ignore[operator]

    code, out, _ = run_cli(
        capsys, "--backend", SOME, "--threads", "1", "--seconds", "0.1", "--repeat", "2"
    )
    assert code == 0
    assert out.splitlines()[0].split() == [
        "backend", "threads", "MH/s", "median", "min", "max", "compile", "s",
    ]  # fmt: skip


def test_bench_all_covers_every_backend_but_the_alias(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        capsys, "--backend", "all", "--threads", "1", "--seconds", "0.1", "--json"
    )
    assert code == 0
    measured = [row["backend"] for row in json_lines(out)]
    assert measured == [name for name in pow.backends() if name != "numba"]


def test_single_threaded_backends_are_measured_once_at_one_thread() -> None:
    assert bench.plan(["hashlib", SOME], [2, 1, 2]) == [("hashlib", 1), (SOME, 2), (SOME, 1)]


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--threads", "0,x"], "--threads"),
        (["--threads", "0"], "--threads"),
        (["--threads", "1,,2"], "--threads"),
        (["--repeat", "0"], "--repeat"),
        (["--seconds", "nan"], "--seconds"),
        (["--backend", "nope"], "'nope'"),
        (["--replicas", "2"], "--target-block-time"),
        (["--target-block-time", "0"], "--target-block-time"),
        (["--target-block-time", "5", "--replicas", "0"], "--replicas"),
        (["--target-block-time", "5", "--backend", "all"], "one backend"),
        (["--target-block-time", "5", "--threads", "1,2"], "one thread count"),
    ],
)
def test_bench_bad_arguments_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], names: str
) -> None:
    code, out, err = run_cli(capsys, *args)
    assert code == cli.EXIT_USAGE
    assert out == ""
    assert len(err.splitlines()) == 1
    assert names in err


def test_progress_rewrites_one_line_and_clears_it() -> None:
    stream = io.StringIO()
    progress = bench.Progress(2, stream)
    progress.step("first")
    progress.step("second")
    progress.close()
    shown = stream.getvalue()
    assert "\n" not in shown
    assert "[1/2] first" in shown and "[2/2] second" in shown
    assert shown.endswith("\r\x1b[K")


# ---------------------------------------------------------------------------------------------
# Choosing DIFFICULTY


def test_tune_picks_the_candidate_closest_to_the_target() -> None:
    rate, replicas, target = 50e6, 2, 5.0
    tuning = bench.tune(rate, replicas, target)
    candidates = [index / 4 for index in range(1, 1024) if _valid(index / 4)]
    expected = {
        d: pow.expected_hashes(pow.target_for_difficulty(d)) / (replicas * rate) for d in candidates
    }
    best = min(candidates, key=lambda d: abs(expected[d] - target))
    assert tuning.difficulty == best
    assert tuning.expected_block_time == pytest.approx(expected[best])
    # 2**29 / 1e8 = 5.37 s; 2**28.75 / 1e8 = 4.51 s is further from 5.
    assert best == 29.0


def test_tune_lists_neighbours_a_bit_either_side_in_quarter_steps() -> None:
    tuning = bench.tune(1e6, 1, 60.0)
    difficulties = [d for d, _ in tuning.neighbours]
    assert difficulties == [tuning.difficulty + step / 4 for step in range(-4, 5)]
    times = [t for _, t in tuning.neighbours]
    assert times == sorted(times)
    assert (tuning.difficulty, tuning.expected_block_time) in tuning.neighbours


def test_tune_uses_the_exact_work_of_the_compact_target() -> None:
    # Compact targets round down, so a block asks a little more than 2**d hashes.
    tuning = bench.tune(1.0, 1, 2.0**10.25)
    work = pow.expected_hashes(pow.target_for_difficulty(10.25))
    assert tuning.difficulty == 10.25
    assert tuning.expected_block_time == work
    assert work > 2**10.25


def test_tune_stays_in_the_valid_range_for_extreme_targets() -> None:
    assert bench.tune(1e9, 1, 1e-12).difficulty == 0.25
    high = bench.tune(1.0, 1, 1e300)
    pow.target_for_difficulty(high.difficulty)
    assert all(_valid(d) for d, _ in high.neighbours)


def test_bench_target_block_time_prints_a_difficulty(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--target-block-time", "5", "--replicas", "2", "--backend", SOME, "--threads", "1"]
    code, out, _ = run_cli(capsys, *args, "--seconds", "0.1", "--json")
    assert code == 0
    (answer,) = json_lines(out)
    assert {
        "rate", "replicas", "target_block_time", "difficulty", "expected_block_time", "neighbours"
    } <= set(answer)  # fmt: skip
    assert answer["replicas"] == 2 and answer["target_block_time"] == 5.0
    d = answer["difficulty"]
    assert isinstance(d, float) and (d * 4).is_integer()
    rate = answer["rate"]
    assert isinstance(rate, float)
    assert answer["difficulty"] == bench.tune(rate, 2, 5.0).difficulty

    code, out, _ = run_cli(capsys, *args, "--seconds", "0.1")
    assert code == 0
    assert "DIFFICULTY=" in out
    assert sum(line.startswith(">") for line in out.splitlines()) == 1


def _valid(difficulty: float) -> bool:
    try:
        pow.target_for_difficulty(difficulty)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# benchmarks/bench_pow.py


def _benchmark(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered first: a dataclass looks its module up by name while the class is made.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_bench_pow_writes_json_and_a_chart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pow.json"
    chart = tmp_path / "pow.png"
    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    args = ["--seconds", "0.1", "--repeat", "2", "--threads", "1,2"]
    args += ["--backends", f"{SOME},hashlib", "--out", str(out)]
    if has_matplotlib:
        args += ["--plot", str(chart)]
    assert _benchmark("bench_pow").main(args) == 0

    figures = json.loads(out.read_text())
    assert set(figures["cpu"]["features"]) == {"sha", "avx2", "avx512f"}
    assert [(row["backend"], row["threads"]) for row in figures["results"]] == [
        (SOME, 1),
        (SOME, 2),
        ("hashlib", 1),
    ]
    for row in figures["results"]:
        assert len(row["rates"]) == 2
        assert row["min"] <= row["median"] <= row["max"]
    assert "| backend |" in capsys.readouterr().out
    if has_matplotlib:
        assert chart.read_bytes().startswith(b"\x89PNG")


# ---------------------------------------------------------------------------------------------
# benchmarks/bench_race.py

RACE_FIGURES = {
    "start_height", "end_height", "blocks", "seconds", "blocks_per_minute", "mean_block_seconds",
    "expected_block_seconds", "hashes_per_second", "races_lost_per_100_blocks", "chi_square",
    "dof", "p_value", "verify", "replicas",
}  # fmt: skip
REPLICA_FIGURES = {
    "miner", "hashes_per_second", "blocks", "share", "expected_share", "races_lost",
    "races_lost_per_100_blocks", "switches", "switch_ms_p50", "switch_ms_p99",
}  # fmt: skip


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs a redis-server binary")
def test_bench_race_writes_every_figure_of_a_verified_race(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "race.json"
    chart = tmp_path / "race.png"
    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    # DIFFICULTY 18: a block in about 10 ms here, so that five take no time but each is raced.
    args = ["--replicas", "2", "--blocks", "5", "--difficulty", "18", "--out", str(out)]
    if has_matplotlib:
        args += ["--plot", str(chart)]
    assert _benchmark("bench_race").main(args) == 0

    figures = json.loads(out.read_text())
    assert figures["parameters"]["difficulty"] == 18.0
    race = figures["race"]
    assert set(race) >= RACE_FIGURES
    assert race["verify"]["ok"], race["verify"]
    assert race["blocks"] == race["end_height"] - race["start_height"] == 5
    rows = race["replicas"]
    assert [row["miner"] for row in rows] == ["race-1", "race-2"]
    for row in rows:
        assert set(row) >= REPLICA_FIGURES
        assert row["hashes_per_second"] > 0
    assert sum(row["blocks"] for row in rows) == 5
    assert sum(row["expected_share"] for row in rows) == pytest.approx(1.0)
    assert "| replica |" in capsys.readouterr().out
    if has_matplotlib:
        assert chart.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--replicas", "1"], "--replicas"),
        (["--blocks", "0"], "--blocks"),
        (["--difficulty", "300"], "--difficulty"),
        (["--backend", "all"], "--backend"),
        (["--backend", "nope"], "--backend"),
    ],
)
def test_bench_race_bad_arguments_exit_2_before_starting_anything(
    capsys: pytest.CaptureFixture[str], args: list[str], names: str
) -> None:
    with pytest.raises(SystemExit) as stopped:
        _benchmark("bench_race").main(args)
    assert stopped.value.code == 2
    assert names in capsys.readouterr().err


@pytest.mark.parametrize(
    ("statistic", "dof", "p"),
    # The 5% critical values of the chi-square table (NIST/SEMATECH e-Handbook, 1.3.6.7.4).
    [(3.841, 1, 0.05), (5.991, 2, 0.05), (7.815, 3, 0.05), (9.488, 4, 0.05), (11.070, 5, 0.05)],
)
def test_chi_square_survival_matches_the_table(statistic: float, dof: int, p: float) -> None:
    assert _benchmark("bench_race").chi_square_sf(statistic, dof) == pytest.approx(p, abs=1e-4)


def test_chi_square_survival_is_one_at_zero_and_falls() -> None:
    sf = _benchmark("bench_race").chi_square_sf
    for dof in range(1, 8):
        assert sf(0.0, dof) == pytest.approx(1.0)
        values = [sf(x, dof) for x in (0.5, 2.0, 8.0, 32.0)]
        assert values == sorted(values, reverse=True)
