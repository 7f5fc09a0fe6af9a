"""The compiled kernels are cached on disk, also when the package directory is read-only."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import miner

PROGRAM = """
from miner import pow
genesis = bytes.fromhex(
    "01000000" + "00" * 32
    + "3ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a"
    + "29ab5f49ffff001d1dac2b7c"
)
print(pow.search(genesis, pow.bits_to_target(0x1D00FFFF), 2083236800, 200, backend="numba"))
"""


def _read_only_copy(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    shutil.copytree(
        Path(miner.__file__).parent, site / "miner", ignore=shutil.ignore_patterns("__pycache__")
    )
    for path in [site, *site.rglob("*")]:
        mode = path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
        path.chmod(mode)
    return site


def test_kernels_compile_into_numba_cache_dir_from_a_read_only_package(tmp_path: Path) -> None:
    site = _read_only_copy(tmp_path)
    cache = tmp_path / "numba-cache"
    env = {**os.environ, "PYTHONPATH": str(site), "NUMBA_CACHE_DIR": str(cache)}
    for _ in range(2):  # the first run compiles and stores, the second loads
        run = subprocess.run(
            [sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=300
        )
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == "2083236893"
    assert list(cache.rglob("*.nbi")), "no numba cache index was written"
    assert not list(site.rglob("*.nbi")), "the read-only package directory was written to"
