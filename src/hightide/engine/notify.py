"""Wake-ups for long-polls, fed by the store's change events (of this server and, on PostgreSQL,
of every server on the database). The store's listener calls ``changed`` from any thread."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Sequence

from hightide.core.states import RunStatus
from hightide.store.changes import Change, ChangeKind


def cancel_key(environment_id: str) -> str:
    """The key heartbeat long-polls of ``environment_id`` wait on: only cancels wake them."""
    return f"cancel:{environment_id}"


QUIET = frozenset({ChangeKind.METADATA, ChangeKind.TAGS})
"""Changes that neither bring work nor free a slot: they wake no claimer (live pages hear them)."""


def keys_of(changes: Sequence[Change]) -> set[str]:
    """What ``changes`` wake: the claimers of their environments (any change may bring work or free
    a slot, except metadata and tags, and a run starting: a claim only takes work and slots), and the
    heartbeats of those where an executing run was cancelled."""
    keys = {c.environment_id for c in changes if c.kind not in QUIET and c.status is not RunStatus.EXECUTING}
    keys.update(cancel_key(c.environment_id) for c in changes if c.kind == ChangeKind.CANCEL_REQUESTED)
    return keys


class Notifier:
    """Per key (an environment id, or its ``cancel_key``), a generation counter and the futures of
    those waiting for it to change.

    Take ``generation(key)`` before looking for work, then ``wait(key, gen, timeout)``: a change
    that lands in between is not missed.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._generation: dict[str, int] = defaultdict(int)
        self._waiters: dict[str, set[asyncio.Future[None]]] = defaultdict(set)

    def changed(self, changes: Sequence[Change]) -> None:
        """Thread-safe (a store listener): wake the waiters on the keys ``changes`` concern."""
        self.wake(keys_of(changes))

    def wake(self, keys: Iterable[str]) -> None:
        """Thread-safe: record a change of each of ``keys`` and wake their waiters."""
        try:
            self._loop.call_soon_threadsafe(self._fire, tuple(keys))
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    def _fire(self, keys: tuple[str, ...]) -> None:
        for key in keys:
            self._generation[key] += 1
            for fut in self._waiters.pop(key, set()):
                if not fut.done():
                    fut.set_result(None)

    def wake_all(self) -> None:
        """Thread-safe: wake every waiter (used at shutdown)."""
        self.wake(list(self._waiters))

    def generation(self, key: str) -> int:
        return self._generation[key]

    async def wait(self, key: str, since: int, timeout: float) -> bool:
        """Wait until ``key`` changes after generation ``since``; False on timeout."""
        if self._generation[key] != since:
            return True
        fut: asyncio.Future[None] = self._loop.create_future()
        self._waiters[key].add(fut)
        try:
            await asyncio.wait_for(fut, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters[key].discard(fut)
