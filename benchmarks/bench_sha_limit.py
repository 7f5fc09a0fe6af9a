"""Benchmark: the nonce-search backends against the throughput limit of this core's SHA units.

The limit is measured, not assumed: numba kernels built on the same intrinsics as the SHA-NI
nonce-search kernel (`miner.kernels.sha_ext`) run complete SHA-256 compressions, 64 rounds and
the full message schedule of 16 fresh words, on 1 to 6 independent streams interleaved. One
stream is bound by the latency of `sha256rnds2`; the best row is what the core can do, and half
of it (two compressions per sha256d) is the limit the backends are compared with. The SHA-NI
nonce-search kernel skips work that a general compression cannot (rounds 0-2 and 62-63, fixed
message words), so it can exceed that limit by a few percent.

Every figure comes from the same run. Other load on the machine only slows a measurement down,
so each is taken in several rounds, interleaved with the others, and the best round counts.
The CPU time the process got is recorded next to each backend figure: on a shared machine a
second thread may not get a whole second core, and `cpu share` (CPU seconds per thread per
second) shows when it did not.

    python benchmarks/bench_sha_limit.py --seconds 3 [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from miner import bench, pow

STREAMS = (1, 2, 3, 4, 6)
ROUNDS = 3


def _compression_chains() -> dict[int, Callable[[int, int], Any]]:
    """For each stream count, a kernel running that many chains of dependent compressions."""
    import numba as nb

    from miner.kernels.sha256 import K
    from miner.kernels.sha_ext import (
        abcd,
        add,
        efgh,
        expand,
        four_rounds,
        lane,
        load,
        splat_series,
        vec,
    )

    @nb.njit(inline="always")
    def compress(abef, cdgh, m0, m1, m2, m3):  # type: ignore[no-untyped-def]
        abef0, cdgh0 = abef, cdgh
        for t in range(0, 64, 4):
            abef, cdgh = four_rounds(abef, cdgh, add(m0, load(K, t)))
            m0, m1, m2, m3 = m1, m2, m3, expand(m0, m1, m2, m3)
        return add(abef, abef0), add(cdgh, cdgh0)

    def chain(streams: int) -> Callable[[int, int], Any]:
        @nb.njit(nogil=True)
        def run(seed, iterations):  # type: ignore[no-untyped-def]
            abef = splat_series(seed, streams)
            cdgh = splat_series(seed + 1000, streams)
            salt = vec(0x5A5A5A5A, 0x3C3C3C3C, 0x0F0F0F0F, 0x12345678)
            for _ in range(iterations):
                # Each block is 16 words that depend on the last state: nothing can be hoisted.
                m0 = abcd(abef, cdgh)
                m1 = efgh(abef, cdgh)
                abef, cdgh = compress(abef, cdgh, m0, m1, add(m0, salt), add(m1, salt))
            return lane(abef, 0)

        return run

    return {streams: chain(streams) for streams in STREAMS}


def _compressions_per_second(run: Callable[[int, int], Any], streams: int, seconds: float) -> float:
    run(1, 1)  # compile
    iterations = 1 << 10
    best = 0.0
    deadline = time.perf_counter() + seconds
    while True:
        began = time.perf_counter()
        run(7, iterations)
        elapsed = time.perf_counter() - began
        best = max(best, iterations * streams / elapsed)
        if began + elapsed >= deadline:
            return best
        if elapsed < 0.05:
            iterations *= 2


def _has_sha() -> bool:
    # The limit kernels use the SHA-NI kernel's intrinsics, so they need what that kernel needs.
    return "numba-shani" in pow._numba_kernels()


def run(seconds: float) -> dict[str, Any]:
    """Measure the limit and every backend; the figures, with ratios, as one JSON-ready dict."""
    chains = _compression_chains() if _has_sha() else {}
    kernels = list(pow._numba_kernels())
    cases = [("hashlib", 1)] + [(kernel, threads) for kernel in kernels for threads in (1, 2)]
    for kernel in kernels:
        pow.warm_up(kernel)

    limit_rows = {streams: 0.0 for streams in chains}
    backend_rows: dict[tuple[str, int], tuple[bench.Measurement, float]] = {}
    slice_seconds = seconds / ROUNDS
    for _ in range(ROUNDS):
        for streams, chain in chains.items():
            rate = _compressions_per_second(chain, streams, slice_seconds)
            limit_rows[streams] = max(limit_rows[streams], rate)
        for backend, threads in cases:
            cpu_began, wall_began = time.process_time(), time.perf_counter()
            result = bench.measure(backend, threads, slice_seconds)
            cpu = time.process_time() - cpu_began
            share = cpu / (threads * (time.perf_counter() - wall_began))
            best = backend_rows.get((backend, threads))
            if best is None or result.hashes_per_second > best[0].hashes_per_second:
                backend_rows[(backend, threads)] = (result, share)

    limit = max(limit_rows.values()) / 2 if limit_rows else None
    one_thread = {b: m.hashes_per_second for (b, t), (m, _) in backend_rows.items() if t == 1}
    backends = []
    for (backend, threads), (m, share) in backend_rows.items():
        backends.append(
            {
                "backend": backend,
                "threads": threads,
                "mhs": m.hashes_per_second / 1e6,
                "per_core_vs_limit": (
                    m.hashes_per_second / threads / limit if limit is not None else None
                ),
                "vs_one_thread": m.hashes_per_second / one_thread[backend],
                "cpu_share": share,
            }
        )
    return {
        "cpu": bench.cpu_info().as_dict(),
        "seconds": seconds,
        "rounds": ROUNDS,
        "compressions": [
            {
                "streams": streams,
                "mcompressions_per_s": rate / 1e6,
                "sha256d_mhs": rate / 2e6,
                "vs_limit": rate / 2 / limit if limit is not None else None,
            }
            for streams, rate in limit_rows.items()
        ],
        "limit_mhs": limit / 1e6 if limit is not None else None,
        "backends": backends,
    }


def _print_table(report: dict[str, Any]) -> None:
    print(bench.CpuInfo(**report["cpu"]).describe())
    print(f"best of {report['rounds']} rounds; {report['seconds']:g} s per figure in all")
    if report["limit_mhs"] is None:
        print("this CPU has no SHA extensions: no SHA-unit limit to compare with")
    else:
        print("\nSHA-NI compressions (64 rounds, full schedule), independent streams interleaved")
        print(f"{'streams':>7}  {'Mcompr/s':>9}  {'sha256d MH/s':>12}  {'/ limit':>7}")
        for row in report["compressions"]:
            print(
                f"{row['streams']:>7}  {row['mcompressions_per_s']:>9.2f}  "
                f"{row['sha256d_mhs']:>12.2f}  {row['vs_limit']:>7.2f}"
            )
        print(f"limit: {report['limit_mhs']:.2f} MH/s sha256d per core (best row / 2)")
    print(
        f"\n{'backend':<14} {'threads':>7}  {'MH/s':>7}  {'per core / limit':>16}  "
        f"{'x 1 thread':>10}  {'cpu share':>9}"
    )
    for row in report["backends"]:
        ratio = row["per_core_vs_limit"]
        shown = f"{ratio:.3f}" if ratio is not None else "-"
        print(
            f"{row['backend']:<14} {row['threads']:>7}  {row['mhs']:>7.2f}  {shown:>16}  "
            f"{row['vs_one_thread']:>10.2f}  {row['cpu_share']:>9.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per figure")
    parser.add_argument("--json", action="store_true", help="print the figures as one object")
    args = parser.parse_args()
    if not args.seconds > 0:
        parser.error(f"--seconds must be > 0, got {args.seconds}")
    report = run(args.seconds)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_table(report)


if __name__ == "__main__":
    main()
