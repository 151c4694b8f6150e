"""In-process wake-ups for long-polls. Store listeners call ``changed`` from any thread."""

from __future__ import annotations

import asyncio
from collections import defaultdict


class Notifier:
    """Per environment, a generation counter and the futures of those waiting for it to change.

    Take ``generation(env)`` before looking for work, then ``wait(env, gen, timeout)``: a change
    that lands in between is not missed.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._generation: dict[str, int] = defaultdict(int)
        self._waiters: dict[str, set[asyncio.Future[None]]] = defaultdict(set)

    def changed(self, environment_id: str) -> None:
        """Thread-safe: record a change in ``environment_id`` and wake its waiters."""
        try:
            self._loop.call_soon_threadsafe(self._fire, environment_id)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    def _fire(self, environment_id: str) -> None:
        self._generation[environment_id] += 1
        for fut in self._waiters.pop(environment_id, set()):
            if not fut.done():
                fut.set_result(None)

    def wake_all(self) -> None:
        """Thread-safe: wake every waiter (used at shutdown)."""
        for env_id in list(self._waiters):
            self.changed(env_id)

    def generation(self, environment_id: str) -> int:
        return self._generation[environment_id]

    async def wait(self, environment_id: str, since: int, timeout: float) -> bool:
        """Wait until ``environment_id`` changes after generation ``since``; False on timeout."""
        if self._generation[environment_id] != since:
            return True
        fut: asyncio.Future[None] = self._loop.create_future()
        self._waiters[environment_id].add(fut)
        try:
            await asyncio.wait_for(fut, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters[environment_id].discard(fut)
