"""The Runs list's live stream: the page's URL asked for ``text/event-stream``.

It subscribes to the whole environment (``hub.subscribe(env)``) and sends, per batch of changes,
out-of-band swaps for htmx's SSE extension (``runs_live.html``):

- ``row``: a row of the page whose run changed, re-rendered in place (same id, same checkbox: the
  checkbox is ``hx-preserve``, so a ticked run stays ticked). A run that no longer matches the
  filters keeps its row, dimmed, until the page is reloaded.
- ``insert``: runs that match the filters and are newer than the page's newest row, at the top;
  on the first page only (an older page is a fixed slice), and at most ``MAX_INSERTED`` of them
  (then ``more``: a link to the newest). ``list``: the same, when the page had no rows at all.
- ``reload``: the subscription dropped states (too many runs changed while the connection
  stalled): a link to reload the page; rows still change in place, no run is inserted any more.

The page tells its stream where it stands: ``at`` (when it read its runs) and ``top`` (the cursor
of its newest row). At connect, the stream reads the page again (the same indexed list query) and
sends what changed since ``at``; each event's id carries the same two, so that a reconnecting
``EventSource`` resumes where it was (``Last-Event-ID``) rather than inserting rows twice."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool

from hightide.engine.realtime import RESUME_MARGIN, Update
from hightide.engine.runs import RunEngine
from hightide.engine.signin import SignedIn
from hightide.errors import ValidationError
from hightide.server import sse
from hightide.server.dashboard.pages import Nav
from hightide.server.dashboard.render import TEMPLATES
from hightide.server.dashboard.runs_filters import RunsQuery, matches
from hightide.server.dashboard.session import StreamAccess
from hightide.server.routes_realtime import SubscriptionStream
from hightide.store.live import RunView
from hightide.store.pages import decode_cursor, encode_cursor
from hightide.store.records import Run

MAX_INSERTED = 200  # rows a page gains live; beyond, it offers a link to the newest
Key = tuple[float, str]  # a run's place in the list: (created_at, id), newest first


def _key(run: Run) -> Key:
    return (run.created_at, run.id)


def stream_url(page_url: str, at: float, top: Run | None) -> str:
    """The page's own URL with where it stands: when it read its runs, and its newest row."""
    extra = {"at": str(int(at * 1000))}
    if top is not None:
        extra["top"] = encode_cursor(top.created_at, top.id)
    return f"{page_url}{'&' if '?' in page_url else '?'}{urlencode(extra)}"


def _position(at: str | None, top: str | None) -> tuple[float | None, Key | None]:
    """``at`` (milliseconds) and ``top`` (a cursor) as given; None for what is missing or wrong."""
    when = int(at) / 1000 if at and at.isdigit() and len(at) <= 15 else None
    key: Key | None = None
    if top:
        try:
            key = decode_cursor(top)
        except ValidationError:  # a wrong cursor: nothing is known to be on the page, nothing is inserted
            key = None
    return when, key


class _ListStream:
    def __init__(self, signed_in: SignedIn, nav: Nav, query: RunsQuery, now: float) -> None:
        self.runs_url = nav.url("runs")
        self.csrf = signed_in.csrf
        self.back = query.url(self.runs_url, cursor=query.cursor)
        self.newest_url = query.url(self.runs_url)
        self.flt = query.run_filter(now)
        self.first_page = query.first_page
        self.shown: set[str] = set()
        self.top: Key | None = None
        self.listed = False  # the page has its table (it had rows, or rows were inserted)
        self.inserted = 0
        self.more_sent = False
        self.at = now
        self.follow: Callable[[list[str]], None] = lambda run_ids: None
        self.overflowed: Callable[[], bool] = lambda: False
        self.stale = False  # states were dropped: the page is to be reloaded, nothing is inserted

    def render(self, **context: object) -> str:
        return TEMPLATES.get_template("runs_live.html").render(
            runs_url=self.runs_url, csrf=self.csrf, back=self.back, **context
        )

    def _row(self, view: RunView, key: str) -> str:
        return self.render(kind="row", run=view.run, unmatched=key.endswith(":1"))

    def event_id(self) -> str:
        top = encode_cursor(*self.top) if self.top else ""
        return f"{int(self.at * 1000)}~{top}"

    async def encode(self, updates: list[Update]) -> list[bytes]:
        candidates: dict[str, Run] = {}
        rows: list[str] = []
        reload = self.overflowed()
        self.stale = self.stale or reload
        top = self.top  # the page's newest row before this batch: a batch may come in any order
        for update in updates:
            run = update.view.run
            self.at = max(self.at, update.at)
            if run.id in self.shown:
                unmatched = not matches(run, self.flt)
                # The same row for every page of this list showing it: rendered once per state.
                key = f"dashboard-runs:{self.runs_url}:{int(unmatched)}"
                rows.append(update.encoded(self._row, key)[0])
            elif not self.stale and self.first_page and matches(run, self.flt) and (top is None or _key(run) > top):
                candidates[run.id] = run
        # The oldest first up to the cap: what is inserted stays contiguous below what is not.
        new = sorted(candidates.values(), key=_key)[: max(0, MAX_INSERTED - self.inserted)]
        if new:
            self.shown.update(run.id for run in new)
            self.inserted += len(new)
            self.top = _key(new[-1])
        events = []
        eid = self.event_id()
        if new:
            self.follow([run.id for run in new])
            newest_first = new[::-1]
            kind = "insert" if self.listed else "list"
            events.append(sse.event(self.render(kind=kind, runs=newest_first), id=eid, name=kind))
            self.listed = True
        if rows:
            events.append(sse.event("\n".join(rows), id=eid, name="row"))
        if self.inserted >= MAX_INSERTED and not self.more_sent:
            events.append(sse.event(self.render(kind="more", newest_url=self.newest_url), id=eid, name="more"))
            self.more_sent = True
        if reload:
            events.append(sse.event(self.render(kind="reload"), id=eid, name="reload"))
        return events

    async def quiet(self) -> list[bytes]:
        """Nothing to take: the ``reload`` notice if states were dropped, else a heartbeat."""
        return await self.encode([]) or [sse.PING]


async def stream(
    request: Request, signed_in: SignedIn, nav: Nav, query: RunsQuery, page_size: int, last_event_id: str | None
) -> Response:
    """The live stream of the list ``query`` describes (see the module's docstring)."""
    engine: RunEngine = request.app.state.engine
    hub = engine.realtime
    params = request.query_params
    at_param, top_param = params.get("at"), params.get("top")
    if last_event_id and "~" in last_event_id:  # a reconnect: where the last event left the page
        at_param, top_param = last_event_id.split("~", 1)
    since, top = _position(at_param, top_param)
    now = engine.clock()
    live = _ListStream(signed_in, nav, query, now)
    live.top = top
    live.at = since if since is not None else now
    sub = hub.subscribe(nav.env.id)  # before reading the page again: no change in between is missed
    try:
        runs, _ = await run_in_threadpool(engine.core.list_runs, nav.env, live.flt, page_size, query.cursor)
    except BaseException:
        hub.unsubscribe(sub)
        raise
    on_page = [run for run in runs if top is not None and _key(run) <= top] if query.first_page else runs
    live.shown = {run.id for run in on_page}
    live.listed = bool(on_page)
    hub.follow(sub, live.shown)
    live.follow = lambda run_ids: hub.follow(sub, run_ids)
    live.overflowed = sub.overflowed
    changed_since = live.at - RESUME_MARGIN
    for run in reversed(runs):  # oldest first: inserted ones end up newest on top
        if run.id not in live.shown or run.updated_at >= changed_since:
            sub.offer(Update(RunView(run), now))
    # It ends when the session does, or the user no longer sees the environment (StreamAccess).
    access = StreamAccess(request, signed_in, nav.env.id)
    stream = SubscriptionStream(request, sub, access=access)
    return sse.EventStream(stream.events(live.encode, until_final=False, quiet=live.quiet), headers=sse.HEADERS)


__all__ = ["MAX_INSERTED", "stream", "stream_url"]
