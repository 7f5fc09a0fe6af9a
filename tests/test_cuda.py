"""The GPU kernel against hashlib, on numba's CUDA simulator or, when asked, a real device.

The simulator runs every CUDA thread as Python, so each test hashes a few hundred nonces at most.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (pip install -e '.[test]')")

import numba
from numba import cuda
from test_pow import BLOCK_125552, GENESIS

from miner import pow
from miner.kernels import cuda as gpu

SIMULATED = bool(numba.config.ENABLE_CUDASIM)
needs_kernel = pytest.mark.skipif(
    not (SIMULATED or cuda.is_available()),
    reason="NUMBA_ENABLE_CUDASIM=0 and no CUDA device: nothing can run the kernel",
)
small = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# tiny_launches sets the same three values for every example, so sharing it between them is safe.
small_with_fixture = settings(
    small, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)


def gpu_search(header: bytes, target: int, start: int, count: int) -> int | None:
    """search() on the GPU kernel, by the same path pow.search(backend="cuda") takes."""
    return pow._search_kernel(gpu.scan, header, target, start, count, 1)


def hashlib_search(header: bytes, target: int, start: int, count: int) -> int | None:
    return pow.search(header, target, start, count, backend="hashlib")


@pytest.fixture
def tiny_launches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Launches of 64 nonces in blocks of 32 threads, so a scan of a few hundred spans several."""
    monkeypatch.setattr(gpu, "FIRST_LAUNCH", 64)
    monkeypatch.setattr(gpu, "LAUNCH_SECONDS", 0.0)
    monkeypatch.setattr(gpu, "THREADS_PER_BLOCK", 32)


@needs_kernel
@pytest.mark.parametrize("header", [GENESIS, BLOCK_125552], ids=["genesis", "block-125552"])
def test_kernel_finds_the_real_nonce_with_the_real_target(header: bytes) -> None:
    nonce = int.from_bytes(header[76:], "little")
    target = pow.bits_to_target(int.from_bytes(header[72:76], "little"))
    assert gpu_search(header, target, nonce - 100, 200) == nonce
    assert gpu_search(header, target, nonce, 1) == nonce
    assert gpu_search(header, target, nonce + 1, 150) is None
    assert gpu_search(header, target, nonce - 150, 150) is None


@needs_kernel
def test_kernel_finds_the_real_nonce_in_a_later_launch(tiny_launches: None) -> None:
    nonce = int.from_bytes(GENESIS[76:], "little")
    target = pow.bits_to_target(0x1D00FFFF)
    assert gpu_search(GENESIS, target, nonce - 200, 250) == nonce


@needs_kernel
@small
@given(
    header=st.binary(min_size=76, max_size=76),
    difficulty=st.integers(1, 9),
    start=st.integers(0, 2**32 - 500),
    count=st.integers(1, 500),
)
def test_kernel_agrees_with_hashlib_on_random_headers(
    header: bytes, difficulty: int, start: int, count: int
) -> None:
    target = pow.target_for_difficulty(difficulty)
    assert gpu_search(header, target, start, count) == hashlib_search(header, target, start, count)


@needs_kernel
@small_with_fixture
@given(header=st.binary(min_size=76, max_size=76), difficulty=st.integers(1, 9))
def test_kernel_returns_the_lowest_winner_across_launches(
    header: bytes, difficulty: int, tiny_launches: None
) -> None:
    target = pow.target_for_difficulty(difficulty)
    assert gpu_search(header, target, 5000, 300) == hashlib_search(header, target, 5000, 300)


@needs_kernel
@small
@given(
    header=st.binary(min_size=76, max_size=76),
    difficulty=st.integers(1, 9),
    count=st.integers(1, 200),
)
def test_kernel_agrees_with_hashlib_at_both_ends_of_the_nonce_space(
    header: bytes, difficulty: int, count: int
) -> None:
    target = pow.target_for_difficulty(difficulty)
    for start in (0, pow.NONCE_SPACE - count):
        assert gpu_search(header, target, start, count) == hashlib_search(
            header, target, start, count
        )


@needs_kernel
def test_kernel_reaches_the_last_nonce(tiny_launches: None) -> None:
    every = 2**256 - 1  # every hash meets this target
    assert gpu_search(GENESIS, every, pow.NONCE_SPACE - 1, 1) == pow.NONCE_SPACE - 1
    assert gpu_search(GENESIS, every, pow.NONCE_SPACE - 100, 100) == pow.NONCE_SPACE - 100
    # The last launch of this scan ends exactly at 2**32 and holds the only winner.
    last = pow.NONCE_SPACE - 1
    header = GENESIS[:76]
    target = int.from_bytes(pow.sha256d(header + last.to_bytes(4, "little")), "little")
    expected = hashlib_search(header, target, last - 199, 200)
    assert expected is not None
    assert gpu_search(header, target, last - 199, 200) == expected


@needs_kernel
def test_kernel_returns_none_for_a_range_without_winner(tiny_launches: None) -> None:
    assert gpu_search(GENESIS, 1, 0, 300) is None
    assert gpu_search(GENESIS, 1, pow.NONCE_SPACE - 300, 300) is None
    assert gpu_search(GENESIS, 2**255, 7, 0) is None


def test_cuda_backend_is_listed_only_with_a_real_device() -> None:
    device = not SIMULATED and cuda.is_available()
    assert ("cuda" in pow.backends()) == device
    if device:
        assert pow.resolve_backend("auto") == "cuda"
        nonce = int.from_bytes(GENESIS[76:], "little")
        target = pow.bits_to_target(0x1D00FFFF)
        assert pow.search(GENESIS, target, nonce - 1000, 2000, backend="cuda") == nonce
    else:
        with pytest.raises(ValueError, match="unknown backend 'cuda'; known on this machine"):
            pow.search(GENESIS, 2**255, 0, 10, backend="cuda")


def test_without_simulator_cuda_is_listed_exactly_when_a_device_is_present() -> None:
    program = (
        "import json\nfrom numba import cuda\nfrom miner import pow\n"
        "print(json.dumps([pow.backends(), cuda.is_available()]))"
    )
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    run = subprocess.run(
        [sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    names, available = json.loads(run.stdout)
    assert ("cuda" in names) == available
    assert names[-1] == "hashlib"
