"""Subscribing to runs over the realtime API (Server-Sent Events): ``runs.subscribe(run_id)`` and
``runs.subscribe_to_tag(tag)``. A dropped connection is opened again, with backoff, and resumed
from the last event received (``Last-Event-ID``): the latest state of a run is never missed, though
intermediate states may be (and a state may come twice after a reconnect)."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from hightide.errors import HightideConnectionError, ServerError
from hightide.sdk.http import ApiSession
from hightide.sdk.models import Run


@dataclass(frozen=True)
class ServerEvent:
    event: str
    data: str
    id: str | None


async def parse_events(lines: AsyncIterator[str]) -> AsyncIterator[ServerEvent]:
    """The events of an ``text/event-stream`` body, as the HTML standard reads it (comments and
    ``retry`` skipped)."""
    data: list[str] = []
    name = ""
    event_id: str | None = None
    async for line in lines:
        if not line:
            if data:
                yield ServerEvent(name or "message", "\n".join(data), event_id)
            data, name = [], ""
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
        elif field == "id" and "\x00" not in value:
            event_id = value


@dataclass(frozen=True)
class Reconnect:
    """How a subscription reconnects: exponential backoff with jitter from ``first`` to ``most``
    seconds; it gives up (``HightideConnectionError``) after ``give_up_after`` seconds without a
    connection. ``idle`` seconds without a byte (the server sends a heartbeat every 15 s) count as
    a dropped connection."""

    first: float = 0.2
    most: float = 5.0
    give_up_after: float = 300.0
    idle: float = 60.0

    def delay(self, failures: int) -> float:
        return min(self.most, self.first * 2 ** max(0, failures - 1)) * random.uniform(0.5, 1.0)


async def subscribe(
    session: ApiSession,
    path: str,
    params: dict[str, Any] | None = None,
    *,
    until_finished: bool = False,
    reconnect: Reconnect | None = None,
) -> AsyncIterator[Run]:
    """The runs a realtime stream at ``path`` sends, across reconnects. With ``until_finished`` it
    ends once a finished run came (a run stream); else when the server ends the stream."""
    policy = reconnect or Reconnect()
    last_id: str | None = None
    failures = 0
    down_since: float | None = None
    while True:
        headers = {"Accept": "text/event-stream", **({"Last-Event-ID": last_id} if last_id else {})}
        try:
            async with session.stream("GET", path, params=params, headers=headers, idle=policy.idle) as response:
                if response.status_code == 204:  # finished, and we saw its final state
                    return
                failures, down_since = 0, None
                async for event in parse_events(response.aiter_lines()):
                    if event.id is not None:
                        last_id = event.id
                    if event.event == "end":
                        return
                    if event.event == "run":
                        run = Run.from_json(json.loads(event.data))
                        yield run
                        if until_finished and run.is_finished:
                            return
        except (HightideConnectionError, ServerError) as exc:  # unreachable, 5xx, 429: try again
            if down_since is None:
                down_since = time.monotonic()
            elif time.monotonic() - down_since > policy.give_up_after:
                raise HightideConnectionError(
                    f"gave up reconnecting to {session.api_url}{path} after {policy.give_up_after:g} s: {exc}"
                ) from exc
        # The stream ended without its end (the server stopped, a proxy cut it): reconnect.
        failures += 1
        await asyncio.sleep(policy.delay(failures))


__all__ = ["Reconnect", "ServerEvent", "parse_events", "subscribe"]
