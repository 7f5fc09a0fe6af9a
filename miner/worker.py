"""The worker: the refresh loop that races other replicas to extend the chain.

One worker is one replica. Its mining thread reads the tip, builds a template, searches nonces in
short slices and commits a win; a background thread listens for new tips on the chain's pub/sub
channel and keeps this replica's heartbeat in Redis. The tip switch, as it happens:

    replica A: ... slice ... slice ... win -> commit (EXEC) -> PUBLISH height:hash:time
    replica B: ... slice ... slice |  listener hears the notice, sets new_tip
                                   +-> the slice in flight ends (<= SLICE_SECONDS)
                                       -> read tip -> new template -> search again

Without pub/sub the tip is still polled every REFRESH_RATE seconds, which also bounds the age
of a template's timestamp and picks up newly submitted entries.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import redis

from miner import chain as chainlib
from miner import pow
from miner.chain import Block, Chain, InvalidBlock
from miner.config import Settings

log = logging.getLogger(__name__)

# A slice of the nonce search lasts about this long, so that a new tip is acted on within it.
SLICE_SECONDS = 0.005
HEARTBEAT_SECONDS = 1.0
# A heartbeat older than this means the miner is gone (its key expires then too).
HEARTBEAT_TTL_SECONDS = 10
RATE_LOG_SECONDS = 30.0
BACKOFF_FIRST_SECONDS = 0.1
BACKOFF_MAX_SECONDS = 5.0
# Tip-switch times kept for the percentiles in the heartbeat.
SWITCH_SAMPLES = 1000

REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, ConnectionError, OSError)


class Backoff:
    """Capped exponential backoff: 0.1 s, 0.2 s, ... up to 5 s, reset on success."""

    def __init__(self) -> None:
        self.failures = 0

    def next_delay(self) -> float:
        delay = min(BACKOFF_MAX_SECONDS, BACKOFF_FIRST_SECONDS * 2.0 ** min(self.failures, 16))
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0


@dataclass(frozen=True)
class Notice:
    """A new tip as published by the replica that committed it."""

    height: int
    hash_hex: str
    committed_at: float


def parse_notice(data: str) -> Notice | None:
    try:
        height, hash_hex, committed_at = data.split(":")
        return Notice(int(height), hash_hex, float(committed_at))
    except ValueError:
        return None


@dataclass
class Stats:
    """What a worker has done so far; written into its heartbeat."""

    started: float = field(default_factory=time.time)
    hashes: int = 0
    blocks: int = 0
    races_lost: int = 0
    switch_ms: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=SWITCH_SAMPLES)
    )
    # (monotonic time, hashes) samples for the recent hash rate.
    samples: collections.deque[tuple[float, int]] = field(
        default_factory=lambda: collections.deque(maxlen=64)
    )

    def rate(self) -> float:
        """Hashes per second over the recent samples (about the last 10 heartbeats)."""
        if len(self.samples) < 2:
            return 0.0
        (t0, h0), (t1, h1) = self.samples[0], self.samples[-1]
        return (h1 - h0) / (t1 - t0) if t1 > t0 else 0.0

    def switch_percentile(self, q: float) -> float | None:
        if not self.switch_ms:
            return None
        ordered = sorted(self.switch_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Worker:
    """One replica of the miner.

    `stop` ends the loop after the slice in flight (a commit under way always completes);
    `until_height` ends it once the chain reaches that height; `on_block` is called with each
    block this worker wins (the demo prints them).
    """

    def __init__(
        self,
        settings: Settings,
        client: redis.Redis,
        *,
        stop: threading.Event | None = None,
        until_height: int | None = None,
        on_block: Callable[[Block, float], None] | None = None,
    ) -> None:
        self.settings = settings
        self.miner = settings.miner_id
        self.chain = Chain(client, settings.chain)
        self.backend = pow.resolve_backend(settings.backend)
        self.stop = stop or threading.Event()
        self.until_height = until_height
        self.on_block = on_block
        self.stats = Stats()
        self._new_tip = threading.Event()
        self._notice: Notice | None = None
        self._switched_to: str | None = None
        self._unconfirmed: Block | None = None
        self._bad_tip: tuple[int, str] | None = None
        self._extra = 0
        self._last_win = (0.0, 0.0)  # seconds and hash rate of the latest winning search
        self._slice = 1 << 14  # nonces per slice, adapted to the measured rate
        self._hashes_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(
            max_workers=settings.threads, thread_name_prefix=f"miner-{settings.miner_id}-search"
        )
        self._last_rate_log = time.monotonic()
        self._hashes_at_rate_log = 0

    # --- Lifecycle -------------------------------------------------------------------------

    def run(self) -> int:
        """Mine until stopped or until the chain reaches `until_height`; returns an exit code."""
        log.info(
            "miner %s: starting on chain %s (backend %s, %d threads, DIFFICULTY %g, Redis %s)",
            self.miner,
            self.settings.chain,
            self.backend,
            self.settings.threads,
            self.settings.difficulty,
            chainlib.redacted(self.settings.redis_url),
        )
        compile_seconds = pow.warm_up(self.backend)
        log.debug("miner %s: kernels ready in %.2f s", self.miner, compile_seconds)
        background = threading.Thread(
            target=self._listen, name=f"miner-{self.miner}-listener", daemon=True
        )
        backoff = Backoff()
        prepared = False
        try:
            while not self.stop.is_set():
                try:
                    if not prepared:
                        self._prepare()
                        prepared = True
                        background.start()
                    if self._round():
                        break
                    if backoff.failures:
                        log.info("miner %s: Redis is back; mining resumes", self.miner)
                    backoff.reset()
                except redis.AuthenticationError:
                    raise  # wrong credentials are a setting to fix, not an outage to wait out
                except REDIS_ERRORS as error:
                    delay = backoff.next_delay()
                    log.warning(
                        "miner %s: Redis unreachable at %s (%s); retrying in %.1f s",
                        self.miner,
                        chainlib.redacted(self.settings.redis_url),
                        error,
                        delay,
                    )
                    self.stop.wait(delay)
        finally:
            self.stop.set()
            self._pool.shutdown(wait=False)
            if background.is_alive():
                background.join(timeout=2)
        log.info(
            "miner %s: stopped after %d blocks won, %d races lost, %.0f MH hashed",
            self.miner,
            self.stats.blocks,
            self.stats.races_lost,
            self.stats.hashes / 1e6,
        )
        return 0

    def _prepare(self) -> None:
        if self.chain.ensure_genesis(self.settings.difficulty):
            log.info("miner %s: created chain %s", self.miner, self.settings.chain)
        self.chain.set_difficulty(self.settings.difficulty, self.miner)

    # --- The race --------------------------------------------------------------------------

    def _round(self) -> bool:
        """Mine one template; True when the worker should stop (the target height is reached)."""
        self._new_tip.clear()  # before reading the tip, so that no notice falls in between
        try:
            tip, schedule = self.chain.checked_tip()
        except InvalidBlock as error:
            self._refuse_tip(error)
            return False
        except chainlib.NoGenesis:
            # The store lost the chain (emptied, or restarted without persistence): start anew.
            log.warning(
                "miner %s: chain %s is gone; creating it again", self.miner, self.chain.name
            )
            self._prepare()
            return False
        self._bad_tip = None
        self._confirm(tip)
        if self.until_height is not None and tip.height >= self.until_height:
            log.info("miner %s: chain reached height %d", self.miner, tip.height)
            return True
        self._note_switch(tip)

        height = tip.height + 1
        bits = chainlib.bits_for(chainlib.required_difficulty(schedule, height))
        entries = self.chain.pending(self.settings.block_entries)
        self._extra += 1  # every template is new work, even within the same second
        template = chainlib.make_template(
            self.chain.name,
            tip,
            self.miner,
            bits,
            now=int(time.time()),
            extra=self._extra,
            entries=entries,
        )
        log.debug(
            "miner %s: mining height %d on %s (%d entries)",
            self.miner,
            height,
            tip.hash_hex[:16],
            len(entries),
        )
        found = self._search(template)
        if found is not None:
            self._commit(found)
        return False

    def _search(self, template: Block) -> Block | None:
        """Search the template's nonces until a win, a new tip, a refresh or a stop.

        With several threads each takes its own part of the nonce space and searches it in
        slices on its own, so that no thread ever waits for another at the end of a slice (a
        thread descheduled on a busy machine would stall the others); the first winner stops
        them all. A worker needs a winner, not the lowest one.
        """
        header = template.header.serialize()[: pow.NONCE_OFFSET]
        target = pow.bits_to_target(template.header.bits)
        began = time.monotonic()
        hashes_before = self.stats.hashes
        threads = self.settings.threads
        if threads == 1:
            winner = self._scan(header, target, 0, pow.NONCE_SPACE, began, None)
        else:
            found = threading.Event()
            part = pow.NONCE_SPACE // threads
            bounds = [(i * part, (i + 1) * part) for i in range(threads)]
            bounds[-1] = (bounds[-1][0], pow.NONCE_SPACE)  # the remainder goes to the last
            futures = [
                self._pool.submit(self._scan, header, target, lo, hi, began, found)
                for lo, hi in bounds
            ]
            winners = [w for w in (future.result() for future in futures) if w is not None]
            winner = min(winners) if winners else None
        self._log_rate()
        if winner is None:
            return None  # abandoned, or the nonce space is spent: the next template is new work
        seconds = time.monotonic() - began
        self._last_win = (seconds, (self.stats.hashes - hashes_before) / max(seconds, 1e-9))
        return template.with_nonce(winner)

    def _scan(
        self,
        header: bytes,
        target: int,
        lo: int,
        hi: int,
        began: float,
        found: threading.Event | None,
    ) -> int | None:
        """Search nonces lo..hi in slices of about SLICE_SECONDS, checking between slices
        whether to stop; `found` is set on a win, and stops the other threads' scans."""
        size = self._slice
        nonce = lo
        while nonce < hi:
            if self.stop.is_set() or self._new_tip.is_set() or (found and found.is_set()):
                return None
            if time.monotonic() - began >= self.settings.refresh_rate:
                return None
            count = min(size, hi - nonce)
            slice_began = time.perf_counter()
            winner = pow.search(header, target, nonce, count, backend=self.backend, threads=1)
            elapsed = time.perf_counter() - slice_began
            done = count if winner is None else winner - nonce + 1
            with self._hashes_lock:
                self.stats.hashes += done
            if elapsed > 0:
                size = max(1 << 10, min(1 << 28, int(done / elapsed * SLICE_SECONDS)))
                self._slice = size
            if winner is not None:
                if found is not None:
                    found.set()
                return winner
            nonce += count
        return None

    def _commit(self, block: Block) -> None:
        seconds, rate = self._last_win
        try:
            won = self.chain.commit(block)
        except InvalidBlock as error:
            log.warning(
                "miner %s: our block at height %d was refused (%s: %s)",
                self.miner,
                block.height,
                error.rule,
                error.detail,
            )
            return
        except REDIS_ERRORS:
            self._unconfirmed = block  # EXEC may or may not have run: the tip will tell
            raise
        if won:
            self._won(block, seconds, rate)
            return
        self.stats.races_lost += 1
        log.warning("miner %s: lost height %d to %s", self.miner, block.height, self._winner(block))

    def _winner(self, block: Block) -> str:
        """Who holds the height this block lost, as far as the store can tell."""
        try:
            stored = self.chain.block_at(block.height)
        except chainlib.ChainError:  # garbage at that height: checked_tip will report it
            return "an unreadable block"
        return stored.miner if stored is not None else "nobody yet"

    def _won(self, block: Block, seconds: float, rate: float) -> None:
        self.stats.blocks += 1
        self._switched_to = block.hash_hex
        log.info(
            "miner %s: won height %d %s... nonce %d in %.2f s at %.2f MH/s (%d entries)",
            self.miner,
            block.height,
            block.hash_hex[:16],
            block.header.nonce,
            seconds,
            rate / 1e6,
            len(block.entries),
        )
        if self.on_block is not None:
            self.on_block(block, seconds)

    def _confirm(self, tip: Block) -> None:
        """Settle a commit whose reply was lost with the connection: the tip says if it landed."""
        block, self._unconfirmed = self._unconfirmed, None
        if block is None:
            return
        if self.chain.tip_hash() == block.hash_hex or self._winner(block) == self.miner:
            self._won(block, *self._last_win)
        else:
            self.stats.races_lost += 1
            log.warning("miner %s: lost height %d (commit interrupted)", self.miner, block.height)

    def _note_switch(self, tip: Block) -> None:
        """Record how long after its commit this worker started on a tip another replica made."""
        if tip.hash_hex == self._switched_to:
            return
        self._switched_to = tip.hash_hex
        notice = self._notice
        if notice is not None and notice.hash_hex == tip.hash_hex:
            switch_ms = (time.time() - notice.committed_at) * 1000
            self.stats.switch_ms.append(max(0.0, switch_ms))
            log.debug(
                "miner %s: switched to height %d %.1f ms after its commit",
                self.miner,
                tip.height,
                switch_ms,
            )

    def _refuse_tip(self, error: InvalidBlock) -> None:
        """Log an untrustworthy tip once, then wait for it to change or be repaired."""
        if self._bad_tip != (error.height, error.rule):
            self._bad_tip = (error.height, error.rule)
            log.error(
                "miner %s: refusing to build on height %d: %s: %s",
                self.miner,
                error.height,
                error.rule,
                error.detail,
            )
        self._new_tip.wait(self.settings.refresh_rate)

    def _log_rate(self) -> None:
        now = time.monotonic()
        if now - self._last_rate_log < RATE_LOG_SECONDS:
            return
        rate = (self.stats.hashes - self._hashes_at_rate_log) / (now - self._last_rate_log)
        log.info(
            "miner %s: %.2f MH/s over the last %.0f s; %d blocks won, %d races lost",
            self.miner,
            rate / 1e6,
            now - self._last_rate_log,
            self.stats.blocks,
            self.stats.races_lost,
        )
        self._last_rate_log, self._hashes_at_rate_log = now, self.stats.hashes

    # --- Background: new-tip notices and the heartbeat ---------------------------------------

    def _listen(self) -> None:
        backoff = Backoff()
        next_beat = 0.0
        while not self.stop.is_set():
            pubsub = self.chain.client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.chain.channel)
                while not self.stop.is_set():
                    message = pubsub.get_message(timeout=0.05)
                    if message is not None:
                        self._on_message(message)
                    if time.monotonic() >= next_beat:
                        self.beat()
                        next_beat = time.monotonic() + HEARTBEAT_SECONDS
                    backoff.reset()
            except REDIS_ERRORS as error:
                delay = backoff.next_delay()
                log.debug(
                    "miner %s: listener lost Redis (%s); again in %.1f s", self.miner, error, delay
                )
                self.stop.wait(delay)
            finally:
                with contextlib.suppress(*REDIS_ERRORS):
                    pubsub.close()

    def _on_message(self, message: dict[str, object]) -> None:
        notice = parse_notice(str(message.get("data")))
        if notice is None:
            log.warning("miner %s: ignoring a malformed tip notice", self.miner)
            return
        self._notice = notice
        self._new_tip.set()

    def beat(self) -> None:
        """Write this worker's heartbeat: counters, hash rate and tip-switch times, with a TTL."""
        now = time.time()
        self.stats.samples.append((time.monotonic(), self.stats.hashes))
        fields: dict[str, object] = {
            "miner": self.miner,
            "backend": self.backend,
            "threads": self.settings.threads,
            "hashes": self.stats.hashes,
            "hashes_per_second": round(self.stats.rate(), 1),
            "blocks": self.stats.blocks,
            "races_lost": self.stats.races_lost,
            "started": round(self.stats.started, 3),
            "last_seen": round(now, 3),
            "switches": len(self.stats.switch_ms),
        }
        for name, q in (("switch_ms_p50", 0.5), ("switch_ms_p99", 0.99)):
            value = self.stats.switch_percentile(q)
            fields[name] = "" if value is None else round(value, 3)
        key = self.chain.miner_key(self.miner)
        with self.chain.client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={name: str(value) for name, value in fields.items()})
            pipe.expire(key, HEARTBEAT_TTL_SECONDS)
            pipe.zadd(self.chain.miners_key, {self.miner: now})
            pipe.execute()


# --- Reading the heartbeats ------------------------------------------------------------------


@dataclass(frozen=True)
class MinerStats:
    miner: str
    blocks: int
    share: float
    hashes_per_second: float
    hashes: int
    races_lost: int
    switch_ms_p50: float | None
    switch_ms_p99: float | None
    last_seen: float
    backend: str
    threads: int


def _number(value: object) -> float | None:
    try:
        return float(str(value)) if value not in (None, "") else None
    except ValueError:
        return None


def live_miners(chain: Chain, now: float | None = None) -> list[MinerStats]:
    """The miners whose heartbeat is fresh, with each one's share of the chain's mined blocks."""
    now = time.time() if now is None else now
    fresh = chain.client.zrangebyscore(chain.miners_key, now - HEARTBEAT_TTL_SECONDS, "+inf")
    chain.client.zremrangebyscore(chain.miners_key, "-inf", now - 24 * 3600)
    wins = chain.wins()
    mined = sum(wins.values())
    with chain.client.pipeline(transaction=False) as pipe:
        for miner in fresh:
            pipe.hgetall(chain.miner_key(str(miner)))
        beats = pipe.execute()
    result = []
    for miner, beat in zip(fresh, beats, strict=True):
        if not beat:
            continue
        blocks = wins.get(str(miner), 0)
        result.append(
            MinerStats(
                miner=str(miner),
                blocks=blocks,
                share=blocks / mined if mined else 0.0,
                hashes_per_second=_number(beat.get("hashes_per_second")) or 0.0,
                hashes=int(_number(beat.get("hashes")) or 0),
                races_lost=int(_number(beat.get("races_lost")) or 0),
                switch_ms_p50=_number(beat.get("switch_ms_p50")),
                switch_ms_p99=_number(beat.get("switch_ms_p99")),
                last_seen=_number(beat.get("last_seen")) or 0.0,
                backend=str(beat.get("backend", "")),
                threads=int(_number(beat.get("threads")) or 0),
            )
        )
    return sorted(result, key=lambda stats: (-stats.blocks, stats.miner))


def heartbeat_age(chain: Chain, miner: str, now: float | None = None) -> float | None:
    """Seconds since the miner's last heartbeat, or None when it has none (expired or never)."""
    now = time.time() if now is None else now
    last_seen = _number(chain.client.hget(chain.miner_key(miner), "last_seen"))
    return None if last_seen is None else now - last_seen
