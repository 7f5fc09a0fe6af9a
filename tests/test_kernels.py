"""The compiled kernels: picked by the CPU's features, exact where only a hash's tail differs."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from miner import pow

KERNELS = list(pow._numba_kernels())


@pytest.fixture
def fresh_dispatch() -> Iterator[None]:
    """Forget the kernels found so far, before and after the test."""
    pow._numba_kernels.cache_clear()
    yield
    pow._numba_kernels.cache_clear()


@pytest.mark.usefixtures("fresh_dispatch")
@pytest.mark.parametrize(
    ("features", "expected"),
    [
        ({"sha": True, "sse4.1": True, "ssse3": True, "avx2": True}, ["shani", "avx2", "scalar"]),
        ({"sha": False, "sse4.1": True, "ssse3": True, "avx2": True}, ["avx2", "scalar"]),
        ({"sha": True, "sse4.1": True, "ssse3": True, "avx2": False}, ["shani", "scalar"]),
        ({}, ["scalar"]),
    ],
    ids=["sha-and-avx2", "avx2-only", "sha-only", "unknown-cpu"],
)
def test_a_kernel_is_offered_only_where_the_cpu_has_its_features(
    monkeypatch: pytest.MonkeyPatch, features: dict[str, bool], expected: list[str]
) -> None:
    # Importing a kernel compiles nothing, so any CPU can list any kernel; none is called here.
    monkeypatch.setattr(pow, "_cpu_features", lambda: features)
    assert list(pow._numba_kernels()) == [f"numba-{name}" for name in expected]
    assert pow.backends() == ["numba", *(f"numba-{name}" for name in expected), "hashlib"]
    assert pow.resolve_backend("numba") == f"numba-{expected[0]}"


@pytest.mark.usefixtures("fresh_dispatch")
def test_a_kernel_the_cpu_lacks_is_never_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pow, "_cpu_features", lambda: {"avx2": False, "sha": False})
    for name in ("miner.kernels.shani", "miner.kernels.sha_ext", "miner.kernels.avx2"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert list(pow._numba_kernels()) == ["numba-scalar"]
    assert pow.search(bytes(76), 2**255, 0, 100, backend="numba") == 0
    assert "miner.kernels.shani" not in sys.modules
    assert "miner.kernels.sha_ext" not in sys.modules
    assert "miner.kernels.avx2" not in sys.modules


def test_warm_up_compiles_the_kernel_numba_stands_for() -> None:
    name = pow.resolve_backend("numba")
    seconds = pow.warm_up("numba")
    assert seconds >= 0
    assert pow._numba_kernels()[name].signatures, f"{name} was not compiled"


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_hash_equal_to_the_target_wins_and_one_below_it_loses(kernel: str) -> None:
    # The kernels compare the top 32 bits first; a target that differs from the hash only in its
    # lowest bit must still be decided by the full 256-bit comparison.
    header = bytes(range(76))
    for nonce in (0, 2**32 - 3):
        value = pow.hash_to_int(pow.sha256d(header + nonce.to_bytes(4, "little")))
        assert pow.search(header, value, nonce, 1, backend=kernel, threads=1) == nonce
        assert pow.search(header, value - 1, nonce, 1, backend=kernel, threads=1) is None


@pytest.mark.parametrize("kernel", KERNELS)
def test_every_alignment_of_a_range_gives_the_lowest_winner(kernel: str) -> None:
    # Interleaved kernels hash several nonces per step: a range may start and end anywhere in a
    # step, and with a target that half of all hashes meet, a step usually holds several winners.
    header = bytes(76)
    for target in (2**255, pow.target_for_difficulty(4)):
        for start in (0, 5, 2**32 - 40):
            for count in range(1, 19):
                expected = pow.search(header, target, start, count, backend="hashlib")
                got = pow.search(header, target, start, count, backend=kernel, threads=1)
                assert got == expected, (start, count)
        for count in range(1, 19):  # ranges that end at the very top of the nonce space
            start = 2**32 - count
            expected = pow.search(header, target, start, count, backend="hashlib")
            assert pow.search(header, target, start, backend=kernel, threads=1) == expected
