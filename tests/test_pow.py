"""The nonce-search core against the standards' own examples and real Bitcoin blocks."""

from __future__ import annotations

import hashlib
import struct
from math import isqrt

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miner import pow
from miner.kernels import scalar
from miner.kernels.sha256 import IV, K

BACKENDS = [name for name in pow.backends() if name != "numba"]


def header_of(version: int, prev: str, merkle: str, time: int, bits: int, nonce: int) -> bytes:
    """An 80-byte header from the fields as block explorers show them (hashes reversed hex)."""
    return (
        struct.pack("<i", version)
        + bytes.fromhex(prev)[::-1]
        + bytes.fromhex(merkle)[::-1]
        + struct.pack("<III", time, bits, nonce)
    )


GENESIS = header_of(
    1,
    "00" * 32,
    "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b",
    1231006505,
    0x1D00FFFF,
    2083236893,
)
GENESIS_HASH = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"

BLOCK_125552 = header_of(
    1,
    "00000000000008a3a41b85b8b29ad444def299fee21793cd8b9e567eab02cd81",
    "2b12fcf1b09288fcaff797d71e950e71ae42b91e8bdb2304758dfcffc2b620e3",
    1305998791,
    0x1A44B9F2,
    2504433986,
)
BLOCK_125552_HASH = "00000000000000001e8d6829a8a21adc5d38d0a473b144b6765798e61f98bd1d"


def reference_search(header: bytes, target: int, start: int, count: int) -> int | None:
    """The definition of search(), spelled out with nothing but hashlib."""
    for nonce in range(start, start + count):
        digest = pow.sha256d(header[:76] + nonce.to_bytes(4, "little"))
        if int.from_bytes(digest, "little") <= target:
            return nonce
    return None


# --- SHA-256 itself (FIPS 180-4 examples) ------------------------------------------------------

FIPS_EXAMPLES = [
    (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    (
        b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    ),
]


@pytest.mark.parametrize(("message", "digest"), FIPS_EXAMPLES)
def test_sha256d_is_sha256_twice_on_fips_examples(message: bytes, digest: str) -> None:
    assert hashlib.sha256(message).hexdigest() == digest
    assert pow.sha256d(message) == hashlib.sha256(bytes.fromhex(digest)).digest()


def test_compiled_compression_matches_fips_one_block_example() -> None:
    # "abc" padded to one block (FIPS 180-4 5.1.1): compressing it from the IV gives the digest.
    block = b"abc" + b"\x80" + bytes(52) + (24).to_bytes(8, "big")
    words = np.frombuffer(block, dtype=">u4").astype(np.uint32)
    state = scalar.midstate(words)
    assert state.astype(">u4").tobytes().hex() == FIPS_EXAMPLES[0][1]


def test_sha256d_of_real_headers_gives_their_block_hashes() -> None:
    assert pow.sha256d(GENESIS)[::-1].hex() == GENESIS_HASH
    assert pow.sha256d(BLOCK_125552)[::-1].hex() == BLOCK_125552_HASH


# --- Compact targets ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bits", "target"),
    [
        (0x1D00FFFF, 0xFFFF << 208),
        (0x1B0404CB, 0x0404CB << 192),
        (0x207FFFFF, 0x7FFFFF << 232),
        (0x1A44B9F2, 0x44B9F2 << 184),
        # Bitcoin's arith_uint256 tests: small sizes shift the mantissa right.
        (0x00123456, 0),
        (0x01003456, 0),
        (0x01123456, 0x12),
        (0x02123456, 0x1234),
        (0x03123456, 0x123456),
        (0x04123456, 0x12345600),
        (0x05009234, 0x92340000),
        # The sign bit with a mantissa that shifts away to zero is zero, not negative.
        (0x00923456, 0),
        (0x01803456, 0),
        (0x02800056, 0),
    ],
)
def test_bits_to_target_decodes_bitcoin_values(bits: int, target: int) -> None:
    assert pow.bits_to_target(bits) == target


@pytest.mark.parametrize("bits", [0x1D00FFFF, 0x1B0404CB, 0x207FFFFF, 0x1A44B9F2, 0x05009234])
def test_canonical_bits_round_trip(bits: int) -> None:
    assert pow.target_to_bits(pow.bits_to_target(bits)) == bits


@pytest.mark.parametrize(
    ("target", "bits"),
    [
        (0x12, 0x01120000),
        (0x1234, 0x02123400),
        (0x80, 0x02008000),  # the mantissa's top bit would read as a sign: one more size byte
        (0x92340000, 0x05009234),
        (0, 0),
    ],
)
def test_target_to_bits_moves_sign_bit_into_size(target: int, bits: int) -> None:
    assert pow.target_to_bits(target) == bits


@pytest.mark.parametrize("bits", [0x04923456, 0x01FEDCBA, 0x1D80FFFF])
def test_negative_bits_are_rejected(bits: int) -> None:
    with pytest.raises(ValueError, match="negative"):
        pow.bits_to_target(bits)


@pytest.mark.parametrize("bits", [0xFF123456, 0x23000100, 0x22010000, 0x21010000 | 0x7FFF])
def test_overflowing_bits_are_rejected(bits: int) -> None:
    with pytest.raises(ValueError, match="overflow"):
        pow.bits_to_target(bits)


@pytest.mark.parametrize("bad", [-1, 2**32])
def test_bits_outside_32_bits_are_rejected(bad: int) -> None:
    with pytest.raises(ValueError, match="32-bit"):
        pow.bits_to_target(bad)


@pytest.mark.parametrize("bad", [-1, 2**256])
def test_unencodable_targets_are_rejected(bad: int) -> None:
    with pytest.raises(ValueError, match="target"):
        pow.target_to_bits(bad)


@given(st.integers(min_value=0, max_value=2**256 - 1))
def test_compact_encoding_rounds_down_and_is_exact_when_representable(target: int) -> None:
    rounded = pow.bits_to_target(pow.target_to_bits(target))
    assert rounded <= target
    assert pow.bits_to_target(pow.target_to_bits(rounded)) == rounded
    # Rounding keeps at least the top 15 significant bits.
    assert target - rounded < max(1, target >> 15)


# --- Difficulty -----------------------------------------------------------------------------


def test_difficulty_32_is_bitcoins_difficulty_one() -> None:
    assert pow.target_to_bits(pow.target_for_difficulty(32)) == 0x1D00FFFF


@pytest.mark.parametrize("difficulty", [0.5, 1, 8, 16, 22, 22.5, 23, 24.25, 40, 128, 200.75, 255])
def test_difficulty_target_is_largest_compact_value_under_the_bound(difficulty: float) -> None:
    target = pow.target_for_difficulty(difficulty)
    bound = 2 ** (256 - difficulty) - 1
    assert 0 < target <= bound
    assert pow.bits_to_target(pow.target_to_bits(target)) == target
    # Expected work is 2**difficulty, up to the compact form's rounding (< 2**-15 relative).
    assert 1 <= pow.expected_hashes(target) / 2**difficulty < 1 + 2**-14


def test_fractional_difficulty_lies_between_its_neighbours() -> None:
    assert pow.target_for_difficulty(23) < pow.target_for_difficulty(22.5)
    assert pow.target_for_difficulty(22.5) < pow.target_for_difficulty(22)


@pytest.mark.parametrize("bad", [0, -1, 256, 255.5, float("nan"), float("inf")])
def test_difficulty_outside_range_is_rejected(bad: float) -> None:
    with pytest.raises(ValueError, match="difficulty"):
        pow.target_for_difficulty(bad)


# --- search(): known answers ----------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("header", [GENESIS, BLOCK_125552], ids=["genesis", "block-125552"])
def test_search_finds_the_real_nonce_with_the_real_target(backend: str, header: bytes) -> None:
    nonce = int.from_bytes(header[76:], "little")
    target = pow.bits_to_target(int.from_bytes(header[72:76], "little"))
    assert pow.search(header, target, nonce - 3000, 6000, backend=backend) == nonce
    assert pow.search(header[:76], target, nonce, 1, backend=backend, threads=1) == nonce
    assert pow.search(header, target, nonce + 1, 3000, backend=backend) is None
    assert pow.search(header, target, nonce - 3000, 3000, backend=backend) is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_search_with_threads_finds_real_nonce_across_chunks(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pow, "CHUNK", 256)
    nonce = int.from_bytes(GENESIS[76:], "little")
    target = pow.bits_to_target(0x1D00FFFF)
    for threads in (2, 3):
        assert pow.search(
            GENESIS, target, nonce - 5000, 9000, backend=backend, threads=threads
        ) == (nonce)


# --- search(): every backend agrees with the definition -------------------------------------

headers = st.binary(min_size=76, max_size=76)
easy_targets = st.integers(min_value=1, max_value=14).map(lambda d: pow.target_for_difficulty(d))
any_targets = st.one_of(easy_targets, st.integers(min_value=1, max_value=2**256 - 1))
agreement = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@agreement
@given(
    header=headers, target=any_targets, start=st.integers(0, 2**32 - 600), count=st.integers(0, 600)
)
def test_backends_agree_on_random_ranges(
    header: bytes, target: int, start: int, count: int
) -> None:
    expected = reference_search(header, target, start, count)
    for backend in BACKENDS:
        assert pow.search(header, target, start, count, backend=backend, threads=1) == expected


@agreement
@given(header=headers, target=easy_targets, count=st.integers(1, 600))
def test_backends_agree_at_both_ends_of_the_nonce_space(
    header: bytes, target: int, count: int
) -> None:
    for start in (0, 2**32 - count):
        expected = reference_search(header, target, start, count)
        for backend in BACKENDS:
            assert pow.search(header, target, start, count, backend=backend) == expected
    for backend in BACKENDS:
        assert pow.search(header, target, 2**32 - count, backend=backend) == reference_search(
            header, target, 2**32 - count, count
        )


@agreement
@given(header=headers, difficulty=st.integers(1, 10), threads=st.integers(2, 4))
def test_threaded_search_returns_the_lowest_winner(
    header: bytes, difficulty: int, threads: int
) -> None:
    target = pow.target_for_difficulty(difficulty)
    expected = reference_search(header, target, 1000, 1500)
    original = pow.CHUNK
    pow.CHUNK = 64
    try:
        for backend in BACKENDS:
            got = pow.search(header, target, 1000, 1500, backend=backend, threads=threads)
            assert got == expected
    finally:
        pow.CHUNK = original


def test_a_range_without_winner_returns_none() -> None:
    target = 1  # no hash is this small
    for backend in BACKENDS:
        assert pow.search(GENESIS, target, 0, 2000, backend=backend) is None


def test_an_80_byte_headers_own_nonce_is_ignored() -> None:
    target = pow.target_for_difficulty(6)
    altered = GENESIS[:76] + b"\xff\xff\xff\xff"
    for backend in BACKENDS:
        assert pow.search(GENESIS, target, 0, 500, backend=backend) == pow.search(
            altered, target, 0, 500, backend=backend
        )


# --- search(): errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"header": bytes(75)}, "76 or 80 bytes"),
        ({"header": bytes(81)}, "76 or 80 bytes"),
        ({"target": 0}, "target"),
        ({"target": -5}, "target"),
        ({"target": 2**256}, "target"),
        ({"start": -1}, "start"),
        ({"start": 2**32 + 1}, "start"),
        ({"start": 2**32 - 10, "count": 11}, "count"),
        ({"count": -1}, "count"),
        ({"backend": "gpu-magic"}, "known on this machine: auto, .*hashlib"),
        ({"threads": 0}, "threads"),
    ],
)
def test_search_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    call: dict[str, object] = {"header": bytes(80), "target": 2**200, "start": 0, "count": 10}
    call.update(kwargs)
    with pytest.raises(ValueError, match=message):
        pow.search(**call)  # type: ignore[arg-type]


def test_empty_range_and_the_very_end_of_nonce_space() -> None:
    for backend in BACKENDS:
        assert pow.search(GENESIS, 2**255, 2**32, backend=backend) is None
        assert pow.search(GENESIS, 2**255, 5, 0, backend=backend) is None


def test_backends_lists_hashlib_and_auto_picks_the_first() -> None:
    names = pow.backends()
    assert "hashlib" in names
    assert pow.resolve_backend("auto") == pow.resolve_backend(names[0])


def _icbrt(n: int) -> int:
    """The integer cube root (floor) of n."""
    x = 1 << ((n.bit_length() + 2) // 3)
    while True:
        y = (2 * x + n // (x * x)) // 3
        if y >= x:
            break
        x = y
    while x**3 > n:
        x -= 1
    while (x + 1) ** 3 <= n:
        x += 1
    return x


def test_round_constants_are_the_cube_and_square_roots_of_the_first_primes() -> None:
    primes = [p for p in range(2, 312) if all(p % q for q in range(2, int(p**0.5) + 1))][:64]
    expected_k = [_icbrt(p << 96) & 0xFFFFFFFF for p in primes]
    expected_iv = [isqrt(p << 64) & 0xFFFFFFFF for p in primes[:8]]
    assert [int(k) for k in K] == expected_k
    assert [int(v) for v in IV] == expected_iv
