"""Test-session set-up: the GPU kernel's tests run on numba's CUDA simulator unless asked not to."""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # numba reads NUMBA_ENABLE_CUDASIM once, on its first import, which no test module has done
    # yet at this point. The simulator replaces only `numba.cuda`; the CPU kernels compile and
    # run as ever. NUMBA_ENABLE_CUDASIM=0 in the environment runs the same tests on a real
    # device instead (benchmarks/gpu_check.py does).
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
