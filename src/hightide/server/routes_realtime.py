"""The realtime API (Server-Sent Events) and public access tokens. See docs/realtime.md.

``GET /realtime/v1/runs/{id}`` streams a run: its state at once, then on every change, until it
finishes. ``GET /realtime/v1/runs?tag=...`` streams the runs of a tag: the newest ones at once,
then every change. Each event is ``event: run`` with the run as ``GET /api/v1/runs/{id}`` serves
it. The caller is authenticated, and the run or tag checked, before anything is streamed.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import Field

from hightide.engine.public_tokens import MAX_NAMES
from hightide.engine.realtime import Render, Subscription, Update
from hightide.engine.runs import RunEngine
from hightide.server import sse
from hightide.server.auth import CurrentEnv
from hightide.server.errors import responses
from hightide.server.follow import Access, Encode, Quiet, follow, ping
from hightide.server.models import Duration, Id, Opaque, StrictBody, Tag
from hightide.server.public_access import (
    CurrentReader,
    check_may_name_run,
    check_may_read_run,
    check_may_read_tag,
)
from hightide.server.routing import ApiRoute
from hightide.server.serialize import iso, retrieved_json
from hightide.store.live import RunView

router = APIRouter(prefix="/realtime/v1", tags=["realtime"], route_class=ApiRoute)
auth_router = APIRouter(
    prefix="/api/v1/auth", tags=["auth"], route_class=ApiRoute, responses=responses(401, 403, 413, 422, 500)
)

_SENT_MEMORY = 10_000  # runs a tag stream remembers the last sent state of (not to send it twice)
LastEventId = Annotated[
    Opaque | None,
    Header(alias="Last-Event-ID", description="the id of the last event received: the stream resumes after it"),
]
_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A stream of Server-Sent Events (`event: run`, `data`: the run as `GET /api/v1/runs/{id}` "
        "serves it; comments as heartbeats)",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


def _json_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Error responses of a stream: JSON (``ErrorResponse``), though the route's own type is not."""
    schema = {"$ref": "#/components/schemas/ErrorResponse"}
    return {
        status: {"description": doc["description"], "content": {"application/json": {"schema": schema}}}
        for status, doc in responses(*statuses).items()
    }


def _engine(request: Request) -> RunEngine:
    return request.app.state.engine


def _heartbeat(request: Request) -> float:
    return float(getattr(request.app.state, "realtime_heartbeat", 15.0))


def renderer(engine: RunEngine) -> Render:
    """The run as ``GET /api/v1/runs/{id}`` serves it, as one line of JSON."""

    def render(view: RunView, base: str) -> str:
        body = retrieved_json(
            view.run, view.attempts, view.waits, lambda wp_id: base + engine.tokens.token_callback_path(wp_id)
        )
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False)

    return render


class SubscriptionStream:
    """One subscriber's stream: events from its subscription, heartbeats while nothing changes,
    and its end (the run finished, the server stops, the public token expires, ``access`` says no
    more: a dashboard stream's session ended)."""

    def __init__(
        self, request: Request, sub: Subscription, expires_at: float | None = None, access: Access | None = None
    ) -> None:
        engine = _engine(request)
        self.hub = engine.realtime
        self.sub = sub
        self.render = renderer(engine)
        self.base = str(request.base_url).rstrip("/")
        self.heartbeat = _heartbeat(request)
        self.clock: Callable[[], float] = engine.clock
        self.expires_at = expires_at
        self.access = access

    def _timeout(self) -> float:
        if self.expires_at is None:
            return self.heartbeat
        return max(0.0, min(self.heartbeat, self.expires_at - self.clock()))

    def _expired(self) -> bool:
        return self.expires_at is not None and self.clock() >= self.expires_at

    def events(self, encode: Encode, *, until_final: bool, quiet: Quiet = ping) -> AsyncIterator[bytes]:
        """The subscription's events as ``encode`` makes them, ``quiet`` (heartbeats) while nothing
        changes, until it ends (``until_final``: after a final state; the public token expires; the
        server stops; ``access`` says the viewer may no longer see it)."""
        return follow(
            self.hub,
            self.sub,
            encode,
            wait=self._timeout,
            until_final=until_final,
            quiet=quiet,
            expired=self._expired,
            access=self.access,
        )

    def run_events(self, last_id: str | None) -> AsyncIterator[bytes]:
        """Every new state of the run, ids being the states' fingerprints; ``end`` once it finished."""
        sent = last_id

        async def encode(updates: list[Update]) -> list[bytes]:
            nonlocal sent
            events = []
            for update in updates:
                text, fingerprint = update.encoded(self.render, self.base)
                if fingerprint != sent:
                    events.append(sse.event(text, id=fingerprint, name="run"))
                    sent = fingerprint
            return events

        return self.events(encode, until_final=True)

    def tag_events(self) -> AsyncIterator[bytes]:
        """Every new state of a run of the tag; ids are the times they were read (a resume cursor)."""
        sent: OrderedDict[str, str] = OrderedDict()

        async def encode(updates: list[Update]) -> list[bytes]:
            events = []
            for update in updates:
                text, fingerprint = update.encoded(self.render, self.base)
                if sent.get(update.run_id) == fingerprint:
                    continue
                sent[update.run_id] = fingerprint
                sent.move_to_end(update.run_id)
                if len(sent) > _SENT_MEMORY:
                    sent.popitem(last=False)
                events.append(sse.event(text, id=_cursor_id(update), name="run"))
            return events

        return self.events(encode, until_final=False)


def _cursor_id(update: Update) -> str:
    return str(int(update.at * 1000))


def _cursor(last_id: str | None) -> float | None:
    """The time a tag stream's event id names; None for anything else (the stream starts over)."""
    if last_id is None or not last_id.isdigit() or len(last_id) > 15:
        return None
    return int(last_id) / 1000


@router.get(
    "/runs/{run_id}",
    summary="Stream a run: its state now and on every change, until it finishes",
    response_class=sse.EventStream,
    responses={
        **_STREAM,
        204: {"description": "The run finished, and `Last-Event-ID` is its final state"},
        **_json_errors(401, 403, 404, 422, 500),
    },
)
async def subscribe_run(
    run_id: Annotated[Id, Path()], reader: CurrentReader, request: Request, last_event_id: LastEventId = None
) -> Response:
    hub = _engine(request).realtime
    check_may_name_run(reader, run_id)
    sub = hub.subscribe(reader.environment.id, run_id=run_id)  # before the first read: no change is missed
    try:
        first = await hub.current(run_id)
        check_may_read_run(reader, run_id, first.view.run if first else None)
    except BaseException:
        hub.unsubscribe(sub)
        raise
    assert first is not None
    stream = SubscriptionStream(request, sub, reader.expires_at)
    if first.view.run.status.is_final and first.encoded(stream.render, stream.base)[1] == last_event_id:
        hub.unsubscribe(sub)  # the client saw the end already: 204 tells EventSource not to reconnect
        return Response(status_code=204)
    sub.offer(first)
    return sse.EventStream(stream.run_events(last_event_id), headers=sse.HEADERS)


@router.get(
    "/runs",
    summary="Stream the runs of a tag: the newest ones now, then every change of any of them",
    response_class=sse.EventStream,
    responses={**_STREAM, **_json_errors(401, 403, 422, 500)},
)
async def subscribe_tag(
    reader: CurrentReader,
    request: Request,
    tag: Annotated[Tag, Query(description="the tag whose runs to stream")],
    limit: Annotated[int, Query(ge=0, le=200, description="how many of the newest runs to send first")] = 50,
    last_event_id: LastEventId = None,
) -> Response:
    hub = _engine(request).realtime
    check_may_read_tag(reader, tag)
    env_id = reader.environment.id
    sub = hub.subscribe(env_id, tag=tag)
    try:
        since = _cursor(last_event_id)
        first = await (hub.changed_since(env_id, tag, since) if since is not None else hub.recent(env_id, tag, limit))
    except BaseException:
        hub.unsubscribe(sub)
        raise
    for update in first:
        sub.offer(update)
    return sse.EventStream(SubscriptionStream(request, sub, reader.expires_at).tag_events(), headers=sse.HEADERS)


# -- public access tokens --------------------------------------------------------------------------


class ReadScope(StrictBody):
    runs: list[Id] = Field(default_factory=list, max_length=MAX_NAMES, description="run ids it may read")
    tags: list[Tag] = Field(
        default_factory=list, max_length=MAX_NAMES, description="it may read the runs with any of these tags"
    )


class PublicTokenBody(StrictBody):
    read: ReadScope
    expires_in: Duration | None = Field(default=None, description="default '1h', at most 7 days")


@auth_router.post(
    "/public-tokens",
    summary="Make a public access token: read-only access to some runs and tags, for browsers",
)
async def create_public_token(body: PublicTokenBody, env: CurrentEnv, request: Request) -> dict[str, Any]:
    engine = _engine(request)
    token, expires_at = await run_in_threadpool(
        engine.public_tokens.create, env, body.read.runs, body.read.tags, body.expires_in
    )
    return {
        "token": token,
        "expires_at": iso(expires_at),
        "read": {"runs": list(dict.fromkeys(body.read.runs)), "tags": list(dict.fromkeys(body.read.tags))},
    }


def install(app: Any, heartbeat: float) -> None:
    """Mount the realtime and public-token routes; ``heartbeat``: seconds between keep-alive comments."""
    app.state.realtime_heartbeat = heartbeat
    app.include_router(router)
    app.include_router(auth_router)


__all__ = ["auth_router", "install", "renderer", "router"]
