"""Benchmark: replicas of `miner run` racing on a real Redis: block rate, shares, tip-switch times.

The script starts its own redis-server on a free port (no persistence, stopped at the end) and R
`miner run` processes against it, and measures the race over a window in which every replica
was mining:

    replicas start ... every heartbeat present: window opens at height h (time t0)
    ... blocks h+1 .. h+B are won ...            window closes at the commit of h+B (time t1)
    a heartbeat from each replica written after the close: the counters, then SIGTERM

The window opens at an arbitrary moment, not at a commit; block finding is memoryless, so the
wait for h+1 is one block time on average like any other. Each replica's hash rate is its own
count of hashes between its first and its closing heartbeat, so the expected block time and the
expected shares come from what the workers did, not from a separate measurement.

    python benchmarks/bench_race.py --replicas 3 --blocks 150 --plot race.png
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from miner import __version__, bench, pow, worker
from miner.chain import Chain

DEFAULT_OUT = Path(__file__).parent / "results" / "race.json"
CHAIN = "race"
# The default DIFFICULTY aims at blocks this long: long against the 5 ms search slice and a
# tip switch of about 10 ms, so that little work is lost to stale templates, and short enough that
# 100 blocks take well under a minute.
TARGET_BLOCK_SECONDS = 0.2
MEASURE_SECONDS = 1.0
# Importing numba and loading the kernels from its cache takes seconds per process, more when
# the replicas start together on two cores; compiling them the first time takes longer still.
START_TIMEOUT_SECONDS = 180.0
STOP_TIMEOUT_SECONDS = 30.0
# The workers' --until-height: the script stops them by SIGTERM at the end of the window, long
# before this; it only bounds how long a worker mines on if the script itself is killed.
CEILING_MARGIN = 10_000


class RaceFailed(Exception):
    """The race could not be run or measured; the message says what to look at."""


@dataclass(frozen=True)
class Beat:
    """The counters of one heartbeat that the figures are made of."""

    hashes: int
    races_lost: int
    last_seen: float
    switches: int
    switch_ms_p50: float | None
    switch_ms_p99: float | None
    backend: str

    @classmethod
    def read(cls, chain: Chain, miner: str) -> Beat | None:
        fields = chain.client.hgetall(chain.miner_key(miner))
        if not fields:
            return None

        def number(name: str) -> float | None:
            value = fields.get(name, "")
            return float(value) if value else None

        return cls(
            hashes=int(fields["hashes"]),
            races_lost=int(fields["races_lost"]),
            last_seen=float(fields["last_seen"]),
            switches=int(fields.get("switches", 0)),
            switch_ms_p50=number("switch_ms_p50"),
            switch_ms_p99=number("switch_ms_p99"),
            backend=str(fields.get("backend", "")),
        )


# --- The processes: a Redis server and the replicas --------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server of the benchmark's own: a free port, no snapshots, no append-only file."""

    def __init__(self, directory: Path) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RaceFailed("redis-server is not on PATH: the race needs a real Redis server")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        arguments = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(directory)]
        arguments += ["--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [executable, *arguments], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RaceFailed(f"redis-server did not answer on port {self.port} within 10 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


class Replica:
    """One `miner run` process; its output goes to a file, which never fills as a pipe would."""

    def __init__(self, name: str, env: dict[str, str], ceiling: int, logs: Path) -> None:
        self.name = name
        self.log_path = logs / f"{name}.log"
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "miner", "run", "--until-height", str(ceiling)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise RaceFailed(
                f"replica {self.name} exited with {code} during the race; its last lines:\n"
                + self.tail()
            )

    def stop(self) -> int:
        """Warm stop (SIGTERM: the slice in flight ends, a commit under way completes); the exit
        code, negative when it had to be killed after STOP_TIMEOUT_SECONDS."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            # Killed rather than waited on, so that the other replicas are stopped too.
            self.process.kill()
            return self.process.wait()


def replica_env(
    url: str, name: str, difficulty: float, threads: int, backend: str
) -> dict[str, str]:
    """This process's environment without its REDIS_* settings, and the replica's own."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("REDIS_")}
    env.update(
        REDIS_URL=url,
        CHAIN=CHAIN,
        MINER_ID=name,
        DIFFICULTY=repr(difficulty),
        THREADS=str(threads),
        POW_BACKEND=backend,
        PYTHONUNBUFFERED="1",
    )
    return env


# --- The race ----------------------------------------------------------------------------------


def choose_difficulty(backend: str, threads: int) -> tuple[float, float, float]:
    """The DIFFICULTY for TARGET_BLOCK_SECONDS at this machine's rate on `threads` threads.

    Returns (difficulty, the measured hashes per second, the expected block time at that rate).
    """
    rate = bench.measure(backend, threads, MEASURE_SECONDS).hashes_per_second
    tuning = bench.tune(rate, 1, TARGET_BLOCK_SECONDS)
    return tuning.difficulty, rate, tuning.expected_block_time


def _wait(
    condition: Callable[[], bool], replicas: Sequence[Replica], timeout: float, what: str
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        for replica in replicas:
            replica.check_alive()
        if time.monotonic() > deadline:
            raise RaceFailed(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def _listen(pubsub: Any, committed: dict[int, float], timeout: float) -> bool:
    """Record the commit time of every notice waiting, or arriving within `timeout`; True if
    there was one."""
    message = pubsub.get_message(timeout=timeout)
    if message is None:
        return False
    # Bounded: at most a short burst of notices is taken at once, so that the caller still gets
    # to check on the replicas while blocks come fast.
    for _ in range(1000):
        notice = worker.parse_notice(str(message["data"]))
        if notice is not None:
            committed[notice.height] = notice.committed_at
        message = pubsub.get_message(timeout=0)
        if message is None:
            break
    return True


def _beats(chain: Chain, names: Sequence[str]) -> dict[str, Beat]:
    beats = {name: Beat.read(chain, name) for name in names}
    missing = [name for name, beat in beats.items() if beat is None]
    if missing:
        raise RaceFailed(f"no heartbeat from {', '.join(missing)}: it stopped beating")
    return {name: beat for name, beat in beats.items() if beat is not None}


def race(
    url: str,
    names: Sequence[str],
    blocks: int,
    difficulty: float,
    threads: int,
    backend: str,
    logs: Path,
    timeout: float,
) -> dict[str, Any]:
    """Run the race and return its raw figures: the window, the blocks, each replica's beats."""
    client = redis.Redis.from_url(url, decode_responses=True)
    chain = Chain(client, CHAIN)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    # Subscribed before any replica starts, so that no commit notice of the window is missed.
    pubsub.subscribe(chain.channel)
    replicas: list[Replica] = []
    began = time.monotonic()
    try:
        for name in names:
            env = replica_env(url, name, difficulty, threads, backend)
            replicas.append(Replica(name, env, CEILING_MARGIN + blocks, logs))

        # A replica writes its first heartbeat as it starts mining, its kernels loaded.
        print(f"waiting for {len(names)} replicas to start mining", file=sys.stderr, flush=True)
        _wait(
            lambda: all(worker.heartbeat_age(chain, name) is not None for name in names),
            replicas,
            START_TIMEOUT_SECONDS,
            "every replica's first heartbeat",
        )
        start_height = chain.height()
        opened = time.time()
        first = _beats(chain, names)
        end_height = start_height + blocks
        print(
            f"all mining at height {start_height} after {time.monotonic() - began:.1f} s; "
            f"racing to {end_height}",
            file=sys.stderr,
            flush=True,
        )

        committed: dict[int, float] = {}
        deadline = time.monotonic() + timeout
        while end_height not in committed:
            if _listen(pubsub, committed, 0.2):
                continue
            for replica in replicas:
                replica.check_alive()
            if time.monotonic() > deadline:
                raise RaceFailed(
                    f"the race reached height {chain.height()} of {end_height} in {timeout:g} s "
                    "(--timeout); a lower --difficulty or fewer --blocks would finish"
                )
        closed = committed[end_height]

        # The counters as of the close: a heartbeat written after it from each replica. The
        # commits go on being recorded meanwhile, for the blocks between two heartbeats.
        def beaten_since_close() -> bool:
            _listen(pubsub, committed, 0)
            beats = [Beat.read(chain, name) for name in names]
            return all(beat is not None and beat.last_seen >= closed for beat in beats)

        _wait(
            beaten_since_close,
            replicas,
            worker.HEARTBEAT_SECONDS * 5,
            "a heartbeat after the end of the window",
        )
        last = _beats(chain, names)
    finally:
        codes = {replica.name: replica.stop() for replica in replicas}
        pubsub.close()
    for replica in replicas:
        if codes[replica.name] != 0:
            raise RaceFailed(
                f"replica {replica.name} exited with {codes[replica.name]}; its last lines:\n"
                + replica.tail()
            )

    verdict = chain.verify()
    winners = collections.Counter(
        block.miner for block in chain.blocks(start_height + 1, end_height)
    )
    client.close()
    return {
        "start_height": start_height,
        "end_height": end_height,
        "opened": opened,
        "closed": closed,
        "winners": winners,
        "committed": sorted(committed.values()),
        "first": first,
        "last": last,
        "verify": {
            "ok": verdict.ok,
            "height": verdict.height,
            "error": None if verdict.error is None else str(verdict.error),
        },
    }


# --- Statistics --------------------------------------------------------------------------------


def chi_square_sf(statistic: float, dof: int) -> float:
    """P(X >= statistic) for X chi-square with `dof` degrees of freedom.

    The regularized upper incomplete gamma Q(dof/2, statistic/2), in the closed forms that exist
    for whole and half-whole first arguments (Abramowitz and Stegun 26.4.4 and 26.4.5).
    """
    if dof < 1:
        raise ValueError(f"dof must be at least 1, got {dof}")
    half = statistic / 2
    if dof % 2 == 0:
        term, total = 1.0, 1.0
        for j in range(1, dof // 2):
            term *= half / j
            total += term
        return math.exp(-half) * total
    total = math.erfc(math.sqrt(half))
    term = math.sqrt(half) / math.gamma(1.5)  # y**(j - 1/2) / gamma(j + 1/2) at j = 1
    for j in range(1, (dof + 1) // 2):
        total += math.exp(-half) * term
        term *= half / (j + 0.5)
    return total


def figures_from(raw: dict[str, Any], difficulty: float, threads: int) -> dict[str, Any]:
    """Block times, shares, chi-square and switch times from what `race` read."""
    blocks = raw["end_height"] - raw["start_height"]
    seconds = raw["closed"] - raw["opened"]
    rows = []
    for name, first in raw["first"].items():
        last = raw["last"][name]
        hashed_seconds = last.last_seen - first.last_seen
        hashes = last.hashes - first.hashes
        # Races lost are counted between two heartbeats, which straddle the window by up to a
        # heartbeat either side: they are set against the blocks committed in the same span.
        beat_blocks = sum(first.last_seen < at <= last.last_seen for at in raw["committed"])
        races_lost = last.races_lost - first.races_lost
        rows.append(
            {
                "miner": name,
                "threads": threads,
                "backend": last.backend,
                "hashes": hashes,
                "hashes_per_second": hashes / hashed_seconds if hashed_seconds > 0 else 0.0,
                "blocks": raw["winners"].get(name, 0),
                "races_lost": races_lost,
                "blocks_between_beats": beat_blocks,
                "races_lost_per_100_blocks": 100 * races_lost / beat_blocks
                if beat_blocks
                else None,
                "switches": last.switches,
                "switch_ms_p50": last.switch_ms_p50,
                "switch_ms_p99": last.switch_ms_p99,
            }
        )
    total_rate = sum(row["hashes_per_second"] for row in rows)
    work = pow.expected_hashes(pow.target_for_difficulty(difficulty))
    statistic = 0.0
    for row in rows:
        row["share"] = row["blocks"] / blocks
        row["expected_share"] = row["hashes_per_second"] / total_rate if total_rate else 0.0
        expected = blocks * row["expected_share"]
        statistic += (row["blocks"] - expected) ** 2 / expected if expected else 0.0
    dof = len(rows) - 1
    return {
        "start_height": raw["start_height"],
        "end_height": raw["end_height"],
        "blocks": blocks,
        "seconds": seconds,
        "blocks_per_minute": blocks / seconds * 60,
        "mean_block_seconds": seconds / blocks,
        "expected_block_seconds": work / total_rate if total_rate else None,
        "expected_hashes_per_block": work,
        "hashes_per_second": total_rate,
        # Each replica's losses per block, summed: how often a height saw a losing commit.
        "races_lost_per_100_blocks": sum(row["races_lost_per_100_blocks"] or 0.0 for row in rows),
        "chi_square": statistic,
        "dof": dof,
        "p_value": chi_square_sf(statistic, dof) if dof else None,
        "verify": raw["verify"],
        "replicas": rows,
    }


# --- Output ------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _per(row: dict[str, Any]) -> str:
    value = row["races_lost_per_100_blocks"]
    return "-" if value is None else f"{value:.1f}"


def print_table(figures: dict[str, Any]) -> None:
    """The race as two Markdown tables: the whole, then one row per replica."""
    race, params = figures["race"], figures["parameters"]
    print(bench.CpuInfo(**figures["cpu"]).describe())
    print(
        f"{params['replicas']} replicas x {params['threads']} thread(s), DIFFICULTY "
        f"{params['difficulty']:g} ({params['difficulty_from']}), window: heights "
        f"{race['start_height'] + 1}..{race['end_height']}\n"
    )
    expected = race["expected_block_seconds"]
    verdict = race["verify"]
    p_value = "-" if race["p_value"] is None else f"{race['p_value']:.3f}"
    print(
        "| blocks | seconds | blocks/min | mean block s | expected s | MH/s (all) "
        "| races lost per 100 blocks | chi-square (dof) | p | verify |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {race['blocks']} | {race['seconds']:.2f} | {race['blocks_per_minute']:.1f} | "
        f"{race['mean_block_seconds']:.3f} | {'-' if expected is None else f'{expected:.3f}'} | "
        f"{race['hashes_per_second'] / 1e6:.2f} | {race['races_lost_per_100_blocks']:.1f} | "
        f"{race['chi_square']:.2f} ({race['dof']}) | {p_value} | "
        f"{'ok' if verdict['ok'] else 'INVALID: ' + str(verdict['error'])} |\n"
    )
    print(
        "| replica | MH/s | blocks | share | expected share | races lost (per 100 blocks) "
        "| switches "
        "| switch p50 ms | switch p99 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in race["replicas"]:
        print(
            f"| {row['miner']} | {row['hashes_per_second'] / 1e6:.2f} | {row['blocks']} | "
            f"{row['share']:.3f} | {row['expected_share']:.3f} | "
            f"{row['races_lost']} ({_per(row)}) | {row['switches']} | "
            f"{_ms(row['switch_ms_p50'])} | {_ms(row['switch_ms_p99'])} |"
        )


def plot(figures: dict[str, Any], path: Path) -> None:
    """Left: each replica's share of the blocks against its share of the hash power. Right: its
    tip-switch times, median and p99."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed: the chart only goes to a file
    import matplotlib.pyplot as plt

    race, params = figures["race"], figures["parameters"]
    rows = race["replicas"]
    names = [row["miner"] for row in rows]
    positions = range(len(rows))
    width = 0.38
    figure, (shares, switches) = plt.subplots(1, 2, figsize=(11, 5), layout="constrained")

    expected = [row["expected_share"] for row in rows]
    observed = [row["share"] for row in rows]
    n = race["blocks"]
    # The spread the observed share would have if blocks went by hash power alone.
    spread = [math.sqrt(p * (1 - p) / n) for p in expected]
    shares.bar([x - width / 2 for x in positions], expected, width, color="C7", label="expected")
    shares.bar(
        [x + width / 2 for x in positions],
        observed,
        width,
        yerr=spread,
        capsize=4,
        color="C0",
        label="observed (±1 s.d. of a race by hash power)",
    )
    top = max(max(observed[i] + spread[i], expected[i]) for i in positions)
    for x, row in zip(positions, rows, strict=True):
        shares.text(
            x + width / 2,
            row["share"] + spread[x] + top * 0.01,
            f"{row['blocks']}",
            ha="center",
            va="bottom",
            fontsize=9,
        )
    shares.set_xticks(list(positions), names)
    # Headroom above the bars, for the legend to sit clear of them.
    shares.set_ylim(0, top * 1.3)
    shares.set_ylabel("share of the window's blocks")
    p_value = "-" if race["p_value"] is None else f"{race['p_value']:.2f}"
    shares.set_title(
        f"Blocks won (count on bar) vs share of hash power\n"
        f"chi-square {race['chi_square']:.2f} on {race['dof']} dof, p = {p_value}",
        fontsize=10,
    )
    shares.legend(loc="upper center", ncol=2, fontsize=9)

    p50 = [row["switch_ms_p50"] or 0.0 for row in rows]
    p99 = [row["switch_ms_p99"] or 0.0 for row in rows]
    switches.bar([x - width / 2 for x in positions], p50, width, color="C2", label="median")
    switches.bar([x + width / 2 for x in positions], p99, width, color="C3", label="p99")
    ceiling = max([*p99, *p50, 1e-3])
    for x in positions:
        for offset, value in ((-width / 2, p50[x]), (width / 2, p99[x])):
            switches.text(
                x + offset, value + ceiling * 0.01, f"{value:.1f}", ha="center", fontsize=9
            )
    switches.set_xticks(list(positions), names)
    switches.set_ylim(0, ceiling * 1.3)
    switches.set_ylabel("ms from a commit to this replica mining on it")
    switches.set_title(
        "Tip switch, as each worker measured it\n(its last switches, up to 1000)", fontsize=10
    )
    switches.legend(loc="upper center", ncol=2, fontsize=9)
    for axes in (shares, switches):
        axes.grid(axis="y", alpha=0.3)
        axes.set_axisbelow(True)

    cpu = bench.CpuInfo(**figures["cpu"]).describe()
    expected_seconds = race["expected_block_seconds"]
    figure.suptitle(
        f"{params['replicas']} replicas x {params['threads']} thread(s), DIFFICULTY "
        f"{params['difficulty']:g}, {n} blocks on {cpu}\n"
        f"{race['blocks_per_minute']:.0f} blocks/min; mean block {race['mean_block_seconds']:.3f} s"
        + ("" if expected_seconds is None else f" (expected {expected_seconds:.3f} s)")
        + f"; {race['races_lost_per_100_blocks']:.1f} races lost per 100 blocks",
        fontsize=11,
    )
    figure.savefig(path, dpi=100)
    plt.close(figure)


# --- The command -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--replicas", type=int, default=3, help="miner processes (default 3)")
    parser.add_argument("--blocks", type=int, default=100, help="blocks measured (default 100)")
    parser.add_argument(
        "--difficulty",
        type=float,
        default=None,
        help=f"DIFFICULTY (default: measured so that a block takes ~{TARGET_BLOCK_SECONDS} s)",
    )
    parser.add_argument("--threads", type=int, default=1, help="threads per replica (default 1)")
    parser.add_argument("--backend", default="auto", help="POW_BACKEND of every replica")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds the window may take (default 600)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the JSON goes")
    parser.add_argument("--plot", type=Path, default=None, metavar="PATH", help="a PNG chart")
    args = parser.parse_args(argv)

    if args.replicas < 2:
        parser.error(f"--replicas must be at least 2 for a race, got {args.replicas}")
    if args.blocks < 1:
        parser.error(f"--blocks must be at least 1, got {args.blocks}")
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    if not args.timeout > 0:
        parser.error(f"--timeout must be > 0 seconds, got {args.timeout}")
    if args.difficulty is not None:
        try:
            pow.target_for_difficulty(args.difficulty)
        except ValueError as error:
            parser.error(f"--difficulty: {error}")
    if args.backend == "all":
        parser.error("--backend must name one backend (or auto), not all")
    try:
        (backend,) = bench.backends_for(args.backend)
    except ValueError as error:
        parser.error(f"--backend: {error}")
    # Checked before racing, so that a missing library does not cost a whole run.
    if args.plot is not None and (missing := bench.plotting_missing()):
        parser.error(missing)

    parameters: dict[str, Any] = {
        "replicas": args.replicas,
        "blocks": args.blocks,
        "threads": args.threads,
        "backend": backend,
    }
    if args.difficulty is None:
        # The replicas share the machine's cores: what sets the block time is their sum.
        threads = min(args.replicas * args.threads, pow.default_threads())
        difficulty, rate, expected = choose_difficulty(backend, threads)
        parameters.update(
            difficulty=difficulty,
            difficulty_from=f"measured: {rate / 1e6:.2f} MH/s on {threads} thread(s)",
        )
        print(
            f"DIFFICULTY {difficulty:g}: this machine hashes {rate / 1e6:.2f} MH/s on {backend} "
            f"with {threads} thread(s), so a block should take about {expected:.3f} s",
            file=sys.stderr,
            flush=True,
        )
    else:
        parameters.update(difficulty=args.difficulty, difficulty_from="given")

    names = [f"race-{index + 1}" for index in range(args.replicas)]
    with tempfile.TemporaryDirectory(prefix="bench-race-") as scratch:
        server = None
        try:
            server = RedisServer(Path(scratch))
            print(f"redis-server on port {server.port}", file=sys.stderr, flush=True)
            raw = race(
                server.url,
                names,
                args.blocks,
                parameters["difficulty"],
                args.threads,
                backend,
                Path(scratch),
                args.timeout,
            )
        except RaceFailed as error:
            print(f"bench_race: {error}", file=sys.stderr)
            return 1
        finally:
            if server is not None:
                server.stop()

    figures: dict[str, Any] = {
        "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": bench.cpu_info().as_dict(),
        "python": platform.python_version(),
        "miner": __version__,
        "parameters": parameters,
        "race": figures_from(raw, parameters["difficulty"], args.threads),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print_table(figures)
    print(f"\nwrote {args.out}")
    if args.plot is not None:
        plot(figures, args.plot)
        print(f"wrote {args.plot}")
    return 0 if figures["race"]["verify"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
