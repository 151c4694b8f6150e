"""Server-Sent Events: the framing of events, and a streaming response that ends when the client
goes away (whatever the ASGI server's version), so that a subscription is dropped at once."""

from __future__ import annotations

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

PING = b": ping\n\n"
"""A comment line: proxies and load balancers see bytes and keep the connection open."""
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering (nginx)


def event(data: str, *, id: str | None = None, name: str | None = None) -> bytes:
    """One event; ``data`` is compact JSON (one line) or HTML (a ``data:`` line per line)."""
    lines = []
    if id is not None:
        lines.append(f"id: {id}")
    if name is not None:
        lines.append(f"event: {name}")
    lines.extend(f"data: {line}" for line in data.splitlines() or [""])
    return ("\n".join(lines) + "\n\n").encode()


def retry(milliseconds: int) -> bytes:
    """Tell ``EventSource`` how long to wait before it reconnects."""
    return f"retry: {milliseconds}\n\n".encode()


class EventStream(StreamingResponse):
    media_type = "text/event-stream"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as tg:

                async def stream() -> None:
                    try:
                        await self.stream_response(send)
                    except OSError:  # the client went away while we wrote
                        pass
                    tg.cancel_scope.cancel()

                async def watch() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    tg.cancel_scope.cancel()

                tg.start_soon(stream)
                tg.start_soon(watch)
        finally:
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:  # its ``finally`` (dropping the subscription) runs now, not at GC
                await close()
