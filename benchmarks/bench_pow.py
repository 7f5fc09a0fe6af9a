"""Benchmark: hash rate of every nonce-search backend at each thread count, repeated, with a chart.

Each repeat is one round over all (backend, thread count) pairs, so that a burst of other load on
a shared machine lands on one round of every pair instead of on every run of one pair. The
median of the rounds is the figure; min and max show how much the machine moved under it. The
CPU model and the features that decide which kernel runs (sha, avx2, avx512f) are recorded with
the figures, since a rate means little without them.

    python benchmarks/bench_pow.py --seconds 2 --repeat 5 --threads 1,2 --plot pow.png
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from miner import __version__, bench, pow

DEFAULT_OUT = Path(__file__).parent / "results" / "pow.json"


def run(
    backends: Sequence[str], threads: Sequence[int], seconds: float, repeat: int
) -> list[bench.Summary]:
    """Every pair measured `repeat` times, in rounds over all pairs; compile time kept apart."""
    pairs = bench.plan(backends, threads)
    compile_seconds = {backend: pow.warm_up(backend) for backend in backends}
    runs: dict[tuple[str, int], list[bench.Measurement]] = {pair: [] for pair in pairs}
    for index in range(repeat):
        print(f"round {index + 1} of {repeat}", file=sys.stderr, flush=True)
        for backend, count in pairs:
            runs[(backend, count)].append(bench.measure(backend, count, seconds))
    return [
        bench.Summary(backend, count, compile_seconds[backend], tuple(runs[(backend, count)]))
        for backend, count in pairs
    ]


def report(summaries: Sequence[bench.Summary], seconds: float, repeat: int) -> dict[str, Any]:
    """The figures and the machine they were measured on, as one JSON-ready dict."""
    return {
        "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": bench.cpu_info().as_dict(),
        "python": platform.python_version(),
        "miner": __version__,
        "seconds": seconds,
        "repeat": repeat,
        "results": [
            {
                **summary.as_dict(),
                "median": summary.median,
                "min": summary.min,
                "max": summary.max,
                "rates": summary.rates,
            }
            for summary in summaries
        ],
    }


def print_table(figures: dict[str, Any]) -> None:
    """The figures as a Markdown table: median MH/s with the spread, and the gain from threads."""
    print(bench.CpuInfo(**figures["cpu"]).describe())
    print(f"median of {figures['repeat']} runs of {figures['seconds']:g} s each\n")
    print("| backend | threads | MH/s (median) | min | max | x 1 thread | compile s |")
    print("|---|---|---|---|---|---|---|")
    one_thread = {
        row["backend"]: row["median"] for row in figures["results"] if row["threads"] == 1
    }
    for row in figures["results"]:
        base = one_thread.get(row["backend"])
        gain = f"{row['median'] / base:.2f}" if base else "-"
        print(
            f"| `{row['backend']}` | {row['threads']} | {row['median'] / 1e6:.2f} | "
            f"{row['min'] / 1e6:.2f} | {row['max'] / 1e6:.2f} | {gain} | "
            f"{row['compile_seconds']:.2f} |"
        )


def plot(figures: dict[str, Any], path: Path) -> None:
    """Bars grouped by backend, one per thread count, with error bars from min to max."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed: the chart only goes to a file
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    rows = figures["results"]
    backends = list(dict.fromkeys(row["backend"] for row in rows))
    thread_counts = sorted({row["threads"] for row in rows})
    colours = {count: f"C{index}" for index, count in enumerate(thread_counts)}
    width = 0.8 / len(thread_counts)
    top = max(row["max"] for row in rows) / 1e6
    figure, axes = plt.subplots(figsize=(9, 5.5), layout="constrained")
    for position, backend in enumerate(backends):
        # A backend measured at fewer thread counts (hashlib: one) gets its bars centred.
        group = [row for row in rows if row["backend"] == backend]
        for slot, row in enumerate(group):
            x = position + (slot - (len(group) - 1) / 2) * width
            median, low, high = (row[key] / 1e6 for key in ("median", "min", "max"))
            axes.bar(
                x,
                median,
                width,
                yerr=[[median - low], [high - median]],
                capsize=4,
                color=colours[row["threads"]],
            )
            # Above the error bar, so the figure never sits on the whisker.
            axes.text(x, high + top * 0.01, f"{median:.1f}", ha="center", va="bottom", fontsize=9)
    handles = [Patch(color=colours[count], label=str(count)) for count in thread_counts]
    axes.legend(handles=handles, title="threads")
    axes.set_xticks(range(len(backends)), backends)
    axes.set_ylabel("hash rate, MH/s (sha256d; bar: median)")
    axes.set_xlabel("backend (hashlib runs on one thread only)")
    cpu = bench.CpuInfo(**figures["cpu"]).describe()
    axes.set_title(
        f"Nonce search on {cpu}\n"
        f"median of {figures['repeat']} runs of {figures['seconds']:g} s each; "
        "error bars: min to max",
        fontsize=10,
    )
    axes.set_ylim(0, top * 1.12)
    axes.grid(axis="y", alpha=0.3)
    axes.set_axisbelow(True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _thread_counts(text: str) -> list[int]:
    try:
        return bench.parse_thread_counts(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=2.0, help="hashing time per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (rounds)")
    parser.add_argument(
        "--threads",
        type=_thread_counts,
        default=sorted({1, pow.default_threads()}),
        metavar="N[,N...]",
        help="thread counts (default: 1 and all usable cores)",
    )
    parser.add_argument(
        "--backends", default="all", help="comma-separated backends, or all (the default)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the JSON goes")
    parser.add_argument("--plot", type=Path, default=None, metavar="PATH", help="a PNG bar chart")
    args = parser.parse_args(argv)

    if not args.seconds > 0:
        parser.error(f"--seconds must be > 0, got {args.seconds}")
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    try:
        backends = [
            backend
            for choice in args.backends.split(",")
            for backend in bench.backends_for(choice.strip())
        ]
    except ValueError as error:
        parser.error(f"--backends: {error}")
    # Checked before measuring, so that a missing library does not cost a whole run.
    if args.plot is not None and (missing := bench.plotting_missing()):
        parser.error(missing)

    summaries = run(list(dict.fromkeys(backends)), args.threads, args.seconds, args.repeat)
    figures = report(summaries, args.seconds, args.repeat)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print_table(figures)
    print(f"\nwrote {args.out}")
    if args.plot is not None:
        plot(figures, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
