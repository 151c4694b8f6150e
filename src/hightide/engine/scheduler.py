"""The time-driven service: promotes delayed runs, expires ttls, recovers lapsed leases, fires
the ticks of cron schedules (it wakes on the minute when a schedule's tick is next), and every
``purge_every`` seconds deletes finished runs past the retention period.

It sleeps until the next thing is due (at most ``tick`` seconds), so it is cheap when idle and
prompt when busy. Several servers may run it on one PostgreSQL: every change it makes is a
conditional update, so the second server's attempt is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import anyio

from hightide.engine.retention import BATCH, MAX_BATCHES
from hightide.engine.runs import RunEngine

PURGE_LIMIT = BATCH * MAX_BATCHES

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, engine: RunEngine, tick: float = 1.0, purge_every: float = 60.0) -> None:
        self.engine = engine
        self.tick = tick
        self.purge_every = purge_every
        self.bulk_every = 5.0  # seconds between looks for actions made on other servers (this one's wake it)
        self._bulk_poke = asyncio.Event()
        self._purged_at: float | None = None  # engine clock of the last retention pass
        self._stop = asyncio.Event()
        self._poke = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_at: float | None = None  # when the current sleep ends (engine clock)

    def stop(self) -> None:
        self._stop.set()
        self._poke.set()
        self._bulk_poke.set()

    def poke_bulk(self, _at: float | None = None) -> None:
        """Thread-safe: a bulk action was made here; work on it now."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._bulk_poke.set)

    def poke(self, at: float | None = None) -> None:
        """Thread-safe: something becomes due at ``at`` (unknown: ``None``); look again now unless
        the scheduler already plans to look by then (a batch of long timers wakes it once)."""
        wake_at = self._wake_at
        if at is not None and wake_at is not None and at >= wake_at:
            return
        if self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._poke.set)
            except RuntimeError:
                pass

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.engine.core.due.subscribe(self.poke)
        self.engine.bulk.asked.subscribe(self.poke_bulk)
        try:
            await asyncio.gather(self._loop_passes(), self._bulk_loop())
        finally:
            self.engine.core.due.unsubscribe(self.poke)
            self.engine.bulk.asked.unsubscribe(self.poke_bulk)

    async def _bulk_loop(self) -> None:
        """Bulk actions, beside the passes (a long one never delays a due run): at once while there
        is work or one was just made here, every ``bulk_every`` seconds otherwise."""
        while not self._stop.is_set():
            self._bulk_poke.clear()
            try:
                acted = await anyio.to_thread.run_sync(self.engine.bulk.process)
            except Exception:
                log.exception("bulk actions pass failed; retrying")
                acted = 0
            if not acted:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._bulk_poke.wait(), timeout=self.bulk_every)

    async def _loop_passes(self) -> None:
        last = self.engine.clock()
        while not self._stop.is_set():
            self._poke.clear()  # before the pass: a poke during it means "look again"
            try:
                await anyio.to_thread.run_sync(self.engine.control.process_due)
                await anyio.to_thread.run_sync(self.engine.schedules.fire_due)
                now = self.engine.clock()
                await anyio.to_thread.run_sync(self.engine.store.claims.announce_ready, last, now)
                last = now
                if self._purged_at is None or now - self._purged_at >= self.purge_every:
                    deleted = await anyio.to_thread.run_sync(self.engine.retention.purge)
                    # A backlog (a pass that found as many as it may delete) goes on at the next pass.
                    self._purged_at = None if deleted >= PURGE_LIMIT else now
                delay = await anyio.to_thread.run_sync(self.engine.control.next_due_in, self.tick)
                delay = await anyio.to_thread.run_sync(self.engine.schedules.next_due_in, delay)
            except Exception:  # a database hiccup must not stop the service: log, back off, go on
                log.exception("scheduler pass failed; retrying")
                delay = self.tick
            self._wake_at = self.engine.clock() + max(delay, 0.01)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), timeout=max(delay, 0.01))
            self._wake_at = None
