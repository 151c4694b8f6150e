"""One subscriber's Server-Sent Events, from a realtime subscription: the loop of the realtime
API's streams (``routes_realtime.py``) and of the dashboard's live pages (``dashboard/run.py``).

The caller says how a batch of new states becomes events (``encode``: JSON for the API, HTML
fragments for a page) and what to send when nothing changed for ``wait()`` seconds (``quiet``: a heartbeat
comment, or a page's time-dependent parts). The stream ends when the run finished (``until_final``),
when the hub closes the subscription (the server stops), when ``expired()`` (a public token
ran out), or when ``access()`` says no more (a dashboard session ended, or its user left the
project: ``dashboard/session.py``'s ``StreamAccess``); the subscription is dropped whatever the way
it ends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from hightide.engine.realtime import RealtimeHub, Subscription, Update
from hightide.server import sse

RETRY_MS = 1000  # what EventSource waits before it reconnects

Encode = Callable[[list[Update]], Awaitable[list[bytes]]]
Quiet = Callable[[], Awaitable[list[bytes]]]


async def ping() -> list[bytes]:
    """A heartbeat: proxies see bytes and keep the connection open."""
    return [sse.PING]


def never() -> bool:
    return False


class Access(Protocol):
    """Whether a stream may go on, asked before each wait: answered from a cache, re-checked (with
    I/O) at most every so often; ``due_in()``: seconds until it checks again, which bounds the wait."""

    async def __call__(self) -> bool: ...

    def due_in(self) -> float: ...


async def follow(
    hub: RealtimeHub,
    sub: Subscription,
    encode: Encode,
    *,
    wait: Callable[[], float],
    until_final: bool,
    quiet: Quiet = ping,
    expired: Callable[[], bool] = never,
    access: Access | None = None,
) -> AsyncIterator[bytes]:
    """The events of ``sub`` (its first state offered already), ``event: end`` after a final state
    when ``until_final``."""
    try:
        yield sse.retry(RETRY_MS)
        while not expired():
            timeout = wait()
            if access is not None:
                if not await access():
                    return
                timeout = min(timeout, access.due_in())
            updates = await sub.take(timeout)
            if updates:
                for chunk in await encode(updates):
                    yield chunk
                if until_final and any(update.view.run.status.is_final for update in updates):
                    yield sse.event("{}", name="end")
                    return
            if sub.closed:
                return
            if not updates:
                for chunk in await quiet():
                    yield chunk
    finally:
        hub.unsubscribe(sub)


__all__ = ["RETRY_MS", "Access", "Encode", "Quiet", "follow", "ping"]
