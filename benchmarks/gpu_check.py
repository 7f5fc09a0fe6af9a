"""Device check for the GPU backend: its tests on a real CUDA device, then its rate and limit.

Run from the repository root with miner[cuda,test] installed: `python benchmarks/gpu_check.py`.
It installs nothing and reaches no network; it lasts well under three minutes. Without numba-cuda
or a device it prints one line saying so and exits 1.

The limit is what the device's 32-bit integer lanes could do if they did nothing but the
operations of one sha256d per OPS_PER_HASH, all at the full rate:

    limit = SMs x INT32 lanes per SM x clock / OPS_PER_HASH
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# numba reads this once, on first import: the device, never the simulator.
os.environ["NUMBA_ENABLE_CUDASIM"] = "0"

ROOT = Path(__file__).resolve().parent.parent
TESTS = ["tests/test_cuda.py", "tests/test_pow.py"]
TEST_TIMEOUT_SECONDS = 120

# One SHA-256 round (FIPS 180-4 6.2.2 step 3) as a GPU since compute capability 5.0 can issue
# it: Sigma0 and Sigma1 are three funnel-shift rotates and one three-input XOR (LOP3) each, Ch
# and Maj one LOP3 each, and T1, T2, e and a take seven additions: 17 operations.
OPS_PER_ROUND = 17
# One message-schedule word (FIPS 180-4 6.2.2 step 1): sigma0 and sigma1 are two rotates, one
# shift and one LOP3 each, and three additions join them: 11 operations.
OPS_PER_SCHEDULE_WORD = 11
# sha256d of a header from its midstate is two compressions, 128 rounds; the three rounds before
# the nonce word need doing once per header, not per nonce, which leaves 125. Each compression
# expands 48 schedule words. Constant folding of the padding words is left out, so the true
# minimum is somewhat lower and the limit somewhat higher.
OPS_PER_HASH = 125 * OPS_PER_ROUND + 2 * 48 * OPS_PER_SCHEDULE_WORD  # 3,181


def int32_lanes_per_sm(capability: tuple[int, int]) -> int:
    """32-bit integer additions an SM issues per clock (CUDA C++ Programming Guide, throughput).

    128 on compute capability 5.x, 6.1 and 6.2; 64 on 6.0 and on every architecture since 7.0.
    """
    major, minor = capability
    return 128 if major == 5 or (major == 6 and minor != 0) else 64


def fail(message: str) -> int:
    print(f"gpu_check: {message}", file=sys.stderr)
    return 1


def run_tests() -> bool:
    """The GPU kernel's tests, and search()'s agreement tests with "cuda" among the backends."""
    began = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS],
        cwd=ROOT,
        env=os.environ.copy(),
        timeout=TEST_TIMEOUT_SECONDS,
    )
    print(
        f"tests: {'passed' if run.returncode == 0 else 'FAILED'} in "
        f"{time.perf_counter() - began:.1f} s"
    )
    return run.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description="Check the GPU backend on a real CUDA device.")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to measure")
    parser.add_argument("--skip-tests", action="store_true", help="measure only")
    args = parser.parse_args()

    try:
        import numba_cuda  # noqa: F401 - numba's own deprecated CUDA target would not do
        from numba import cuda
    except ImportError as error:
        return fail(f"numba-cuda is not installed ({error}); install miner[cuda] first")
    if not cuda.is_available():
        lines = str(cuda.cuda_error() or "").splitlines()
        reason = next((line.strip() for line in lines if line.strip()), "no device found")
        return fail(f"no CUDA device here ({reason}); nothing was run")

    from miner import bench, pow

    device = cuda.get_current_device()
    name = device.name.decode() if isinstance(device.name, bytes) else str(device.name)
    capability = tuple(device.compute_capability)
    sms = int(device.MULTIPROCESSOR_COUNT)
    clock_hz = int(device.CLOCK_RATE) * 1000  # the attribute is in kHz: the peak SM clock
    lanes = int32_lanes_per_sm(capability)
    print(
        f"device: {name}, compute capability {capability[0]}.{capability[1]}, {sms} SMs, "
        f"{clock_hz / 1e6:.0f} MHz, {lanes} INT32 lanes per SM"
    )
    if "cuda" not in pow.backends():
        return fail(f"the device is present but pow.backends() is {pow.backends()}")

    if not args.skip_tests and not run_tests():
        return fail("the GPU backend's tests failed on the device; no rate was measured")

    result = bench.measure("cuda", 1, args.seconds)
    limit = sms * lanes * clock_hz / OPS_PER_HASH
    ratio = result.hashes_per_second / limit
    print(
        f"cuda: {result.hashes_per_second / 1e6:,.1f} MH/s ({result.hashes:,} hashes in "
        f"{result.seconds:.2f} s; compile {result.compile_seconds:.2f} s)"
    )
    print(
        f"limit: {limit / 1e6:,.1f} MH/s = {sms} SMs x {lanes} lanes x {clock_hz / 1e6:.0f} MHz "
        f"/ {OPS_PER_HASH:,} ops per hash; measured/limit = {ratio:.1%}"
    )
    print(
        json.dumps(
            {
                "device": name,
                "compute_capability": list(capability),
                "sms": sms,
                "clock_hz": clock_hz,
                "int32_lanes_per_sm": lanes,
                "ops_per_hash": OPS_PER_HASH,
                "limit_hashes_per_second": limit,
                "ratio": ratio,
                **result.as_dict(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
