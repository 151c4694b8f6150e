"""The time-driven service: promotes delayed runs, expires ttls, recovers lapsed leases, fires
the ticks of cron schedules (it wakes on the minute when a schedule's tick is next), and every
``purge_every`` seconds deletes finished runs past the retention period.

It sleeps until the next thing is due, and at most ``tick`` seconds, when it only asks the store
when the next thing is due (another server may have made something due): cheap when idle, prompt
when busy. Several servers may run it on one PostgreSQL: every change it makes is a
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
        """A full pass when something is due (or poked, or retention's time came); between them,
        every ``tick`` at most, one look at when the next thing is due, for what other servers made
        due meanwhile: an idle server asks two questions a second, not a pass's eight."""
        last = self.engine.clock()  # the last full pass: announce_ready's window starts there
        full = True
        while not self._stop.is_set():
            self._poke.clear()  # before the pass: a poke during it means "look again"
            try:
                if full:
                    last = await anyio.to_thread.run_sync(self._pass, last)
                due_at = await anyio.to_thread.run_sync(self._next_due_at, last)
                failed = False
            except Exception:  # a database hiccup must not stop the service: log, back off, go on
                log.exception("scheduler pass failed; retrying")
                due_at, failed = None, True
            now = self.engine.clock()
            delay = max(0.01, self.tick if due_at is None else min(self.tick, due_at - now))
            self._wake_at = now + delay
            poked = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), timeout=delay)
                poked = True
            self._wake_at = None
            now = self.engine.clock()
            full = poked or failed or (due_at is not None and due_at <= now) or self._purge_due(now)

    def _pass(self, last: float) -> float:
        """Apply what is due, fire the schedules' ticks, wake the claimers of runs that became
        available since ``last``, and purge past the retention period when its time came. Returns
        the end of the window announced."""
        self.engine.control.process_due()
        self.engine.schedules.fire_due()
        now = self.engine.clock()
        self.engine.store.claims.announce_ready(last, now)
        if self._purge_due(now):
            deleted = self.engine.retention.purge()
            # A backlog (a pass that found as many as it may delete) goes on at the next pass.
            self._purged_at = None if deleted >= PURGE_LIMIT else now
        return now

    def _purge_due(self, now: float) -> bool:
        return self._purged_at is None or now - self._purged_at >= self.purge_every

    def _next_due_at(self, last: float) -> float | None:
        """When the next thing is due: a run's or waitpoint's time, a run that became available
        after ``last``, a schedule's tick to fire."""
        times = [self.engine.control.next_due_at(last), self.engine.schedules.next_fire_at()]
        present = [at for at in times if at is not None]
        return min(present) if present else None
