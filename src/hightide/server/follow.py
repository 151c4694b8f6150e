"""One subscriber's Server-Sent Events, from a realtime subscription: the loop of the realtime
API's streams (``routes_realtime.py``) and of the dashboard's live pages (``dashboard/run.py``).

The caller says how a batch of new states becomes events (``encode``: JSON for the API, HTML
fragments for a page) and what to send when nothing changed for ``wait()`` seconds (``quiet``: a heartbeat
comment, or a page's time-dependent parts). The stream ends when the run finished (``until_final``),
when the hub closes the subscription (the server stops), or when ``expired()`` (a public token
ran out); the subscription is dropped whatever the way it ends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

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


async def follow(
    hub: RealtimeHub,
    sub: Subscription,
    encode: Encode,
    *,
    wait: Callable[[], float],
    until_final: bool,
    quiet: Quiet = ping,
    expired: Callable[[], bool] = never,
) -> AsyncIterator[bytes]:
    """The events of ``sub`` (its first state offered already), ``event: end`` after a final state
    when ``until_final``."""
    try:
        yield sse.retry(RETRY_MS)
        while not expired():
            updates = await sub.take(wait())
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


__all__ = ["RETRY_MS", "Encode", "Quiet", "follow", "ping"]
