"""The time-driven service: promotes delayed runs, expires ttls, recovers lapsed leases, fires
the ticks of cron schedules (it wakes on the minute when a schedule's tick is next).

It sleeps until the next thing is due (at most ``tick`` seconds), so it is cheap when idle and
prompt when busy. Several servers may run it on one PostgreSQL: every change it makes is a
conditional update, so the second server's attempt is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import anyio

from hightide.engine.runs import RunEngine

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, engine: RunEngine, tick: float = 1.0) -> None:
        self.engine = engine
        self.tick = tick
        self._stop = asyncio.Event()
        self._poke = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_at: float | None = None  # when the current sleep ends (engine clock)

    def stop(self) -> None:
        self._stop.set()
        self._poke.set()

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
        try:
            await self._loop_passes()
        finally:
            self.engine.core.due.unsubscribe(self.poke)

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
                delay = await anyio.to_thread.run_sync(self.engine.control.next_due_in, self.tick)
                delay = await anyio.to_thread.run_sync(self.engine.schedules.next_due_in, delay)
            except Exception:  # a database hiccup must not stop the service: log, back off, go on
                log.exception("scheduler pass failed; retrying")
                delay = self.tick
            self._wake_at = self.engine.clock() + max(delay, 0.01)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), timeout=max(delay, 0.01))
            self._wake_at = None
