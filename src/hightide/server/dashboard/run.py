"""The Run page, at ``/projects/{project}/env/{env}/runs/{run_id}``: everything a run has, its trace
as a waterfall, live while it is unfinished, and Cancel, Replay (with an edited payload) and
Reset of its idempotency key.

The page is made of parts (``_run_parts.html``): the page renders them all, and its live stream
(``.../live``, Server-Sent Events) sends a part again, re-rendered, whenever it changed, for the
htmx SSE extension to swap in. The stream is the realtime API's loop (``server/follow.py``) fed
by the same hub; it ends when the run finished, or when its session ended or its user left the
project (re-checked every ``session.RECHECK_SECONDS``)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse
from markupsafe import Markup

from hightide.engine.control import SAME_PAYLOAD
from hightide.engine.journal import RunWait
from hightide.engine.realtime import Update
from hightide.engine.runs import RunEngine
from hightide.engine.signin import SignedIn
from hightide.errors import ConflictError, HightideError, NotFoundError
from hightide.server import sse
from hightide.server.dashboard.pages import Nav, open_environment
from hightide.server.dashboard.render import TEMPLATES, moment, render
from hightide.server.dashboard.routing import DashboardRoute
from hightide.server.dashboard.session import FragmentSession, PageSession, StreamAccess, form_fields
from hightide.server.dashboard.waterfall import Bar, Waterfall, build
from hightide.server.follow import follow
from hightide.store.records import Attempt, Environment, LogEntry, Run

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

PAGE = "/projects/{project}/env/{env}/runs/{run_id}"
CHILDREN_SHOWN = 50
LOGS_SHOWN = 500
STARTED = frozenset({"EXECUTING", "WAITING"})
RUN_ID = re.compile(r"run_[0-9a-z]{1,40}")
LIVE_TICK = 2.0
"""Seconds: how often a live page re-reads what no change event announces (``refresh``: its spans,
its children's states, the clock of a bar still growing); an event re-reads it all."""
PARTS = ("status", "actions", "overview", "tags", "metadata", "key", "result", "attempts", "waits", "children", "trace")

FLASH = {
    "cancelled": ("ok", "Run cancelled, and its unfinished children with it."),
    "cancel-finished": ("error", "This run had already finished: there was nothing to cancel."),
    "replayed": ("ok", "Replay started: this is the new run."),
    "key-reset": ("ok", "Idempotency key reset: the next trigger with it starts a new run."),
    "key-gone": ("ok", "No run holds this idempotency key any more: there was nothing to reset."),
}


@dataclass(frozen=True)
class RunPage:
    """What the page shows of one run, read at ``now``."""

    nav: Nav
    run: Run
    attempts: list[Attempt]
    waits: list[RunWait]
    children: list[Run]
    more_children: bool
    parent: Run | None
    root: Run | None
    waterfall: Waterfall
    now: float

    @property
    def url(self) -> str:
        return f"{self.nav.url('runs')}/{self.run.id}"

    def run_url(self, run_id: str) -> str:
        return f"{self.nav.url('runs')}/{run_id}"


def load(engine: RunEngine, nav: Nav, run_id: str) -> RunPage:
    """Read the run and everything around it (blocking: call it in a thread)."""
    env = nav.env
    run = engine.core.get_run(env, run_id)  # a run of another environment is not found, as no run
    children, more, waterfall, now = _moving(engine, env, run)
    return RunPage(
        nav=nav,
        run=run,
        attempts=engine.core.attempts(run),
        waits=engine.journal.waits(env, run.id),
        children=children,
        more_children=more,
        parent=_related(engine, env, run.parent_run_id),
        root=_related(engine, env, run.root_run_id if run.root_run_id != run.parent_run_id else None),
        waterfall=waterfall,
        now=now,
    )


def refresh(engine: RunEngine, page: RunPage) -> RunPage:
    """``page`` with what changes without an event of its run read again: its children (their
    states) and its trace (spans recorded, bars still growing). The run, its attempts and waits
    change with its state, which its events announce (blocking: call it in a thread)."""
    children, more, waterfall, now = _moving(engine, page.nav.env, page.run)
    return replace(page, children=children, more_children=more, waterfall=waterfall, now=now)


def _moving(engine: RunEngine, env: Environment, run: Run) -> tuple[list[Run], bool, Waterfall, float]:
    children, more = engine.core.children(run, CHILDREN_SHOWN)  # oldest first, as they were triggered
    trace = engine.traces.trace(env, run.id)
    now = engine.clock()
    return children, more, build(trace, run.id, {c.id for c in children}, now), now


def _related(engine: RunEngine, env: Environment, run_id: str | None) -> Run | None:
    if run_id is None:
        return None
    try:
        return engine.core.get_run(env, run_id)
    except NotFoundError:
        return None


def pretty(value: Any) -> str:
    """A JSON value as the page shows it: indented."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def value_text(value: Any) -> str:
    """An attribute's value: a string as it is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def clock(ts: float | None) -> str:
    """``19:40:12.345`` (UTC), for log records and spans."""
    if ts is None:
        return ""
    return moment(ts).strftime("%H:%M:%S.%f")[:-3]


HELPERS: dict[str, Any] = {"pretty": pretty, "value_text": value_text, "clock": clock}


def digest(html: str) -> str:
    return hashlib.blake2b(html.encode(), digest_size=8).hexdigest()


def render_parts(page: RunPage, csrf: str) -> dict[str, Markup]:
    """Each part of the page, rendered as the page and its live stream show it."""
    module = TEMPLATES.get_template("_run_parts.html").make_module(HELPERS)
    return {name: Markup(getattr(module, name)(page, csrf)) for name in PARTS}


async def _page(request: Request, project: str, env: str, run_id: str, signed_in: SignedIn) -> RunPage:
    nav = await open_environment(request, signed_in, project, env, "runs")
    engine: RunEngine = request.app.state.engine
    return await run_in_threadpool(load, engine, nav, run_id)


async def _show(
    request: Request,
    page: RunPage,
    signed_in: SignedIn,
    status_code: int = 200,
    span: str | None = None,
    replay_input: str | None = None,
    replay_error: str | None = None,
) -> Response:
    bars = page.waterfall.bars
    selected = (page.waterfall.bar(span) if span else None) or (bars[0] if bars else None)
    logs = await run_in_threadpool(_span_logs, request, page, selected) if selected else []
    parts = render_parts(page, signed_in.csrf)
    # The stream sends only the parts that differ from these (not to swap a part, an open dialog in it, for nothing).
    seen = ".".join(digest(parts[name]) for name in PARTS)
    flash = request.query_params.get("flash", "")
    replayed_from = request.query_params.get("from", "") if flash == "replayed" else ""
    return render(
        request,
        "run.html",
        status_code,
        signed_in=signed_in,
        nav=page.nav,
        page=page,
        parts=parts,
        live_url=None if page.run.status.is_final else f"{page.url}/live?{urlencode({'seen': seen})}",
        selected=selected,
        span_logs=logs,
        flash=FLASH.get(flash),
        replayed_from=replayed_from if RUN_ID.fullmatch(replayed_from) else "",
        replay_input=pretty(page.run.payload) if replay_input is None else replay_input,
        replay_error=replay_error,
        **HELPERS,
    )


@router.get(PAGE)
async def run_page(
    request: Request, project: str, env: str, run_id: str, signed_in: PageSession, span: str | None = None
) -> Response:
    page = await _page(request, project, env, run_id, signed_in)
    return await _show(request, page, signed_in, span=span)


# -- a span's details (the waterfall's rows load them) ----------------------------------------------


def _span_logs(request: Request, page: RunPage, bar: Bar) -> list[tuple[int, LogEntry]]:
    """The log records written inside ``bar``'s span or the spans under it, of its run."""
    engine: RunEngine = request.app.state.engine
    bars = page.waterfall.bars
    i = bars.index(bar)
    inside = {bar.span.span_id}
    for later in bars[i + 1 :]:
        if later.depth <= bar.depth:
            break
        inside.add(later.span.span_id)
    env, run_id = page.nav.env, bar.span.run_id
    if bar.span.kind == "run":  # all of them
        return engine.traces.logs(env, run_id, limit=LOGS_SHOWN)
    # An attempt's span has too those of its attempt written outside any span.
    attempt = bar.span.attempt if bar.span.kind == "attempt" else None
    return engine.traces.span_logs(env, run_id, sorted(inside), LOGS_SHOWN, attempt)


@router.get(PAGE + "/spans/{span_id}")
async def span_details(
    request: Request, project: str, env: str, run_id: str, span_id: str, signed_in: FragmentSession
) -> Response:
    page = await _page(request, project, env, run_id, signed_in)
    bar = page.waterfall.bar(span_id)
    if bar is None:
        raise NotFoundError(f"there is no span {span_id!r} in the trace of run {run_id}")
    logs = await run_in_threadpool(_span_logs, request, page, bar)
    return render(request, "_run_span.html", page=page, selected=bar, span_logs=logs, **HELPERS)


# -- live --------------------------------------------------------------------------------------------


@router.get(PAGE + "/live")
async def run_live(
    request: Request, project: str, env: str, run_id: str, signed_in: FragmentSession, seen: str = ""
) -> Response:
    """The page's parts as Server-Sent Events (``event: <part>``, ``data``: its HTML): at once those
    that differ from the page's (``seen``: their digests, in ``PARTS`` order), then each again when
    it changed, until the run finished (``event: end``)."""
    nav = await open_environment(request, signed_in, project, env, "runs")
    engine: RunEngine = request.app.state.engine
    hub = engine.realtime
    sub = hub.subscribe(nav.env.id, run_id=run_id)  # before the first read: no change is missed
    try:
        first = await hub.current(run_id)
        if first is None or first.view.run.environment_id != nav.env.id:
            raise NotFoundError(f"run {run_id!r} not found in environment {nav.env.slug!r}")
    except BaseException:
        hub.unsubscribe(sub)
        raise
    sub.offer(first)
    sent = dict(zip(PARTS, seen.split(".")[: len(PARTS)], strict=False))

    last: list[RunPage] = []  # the page as last read

    async def changed_parts(*, ticked: bool = False) -> list[bytes]:
        try:
            if ticked and last:  # nothing announced: only what changes unannounced
                page = await run_in_threadpool(refresh, engine, last[0])
            else:
                page = await run_in_threadpool(load, engine, nav, run_id)
        except NotFoundError:
            return []
        last[:] = [page]
        events = []
        for name, html in render_parts(page, signed_in.csrf).items():
            now = digest(html)
            if sent.get(name) != now:
                sent[name] = now
                events.append(sse.event(str(html), name=name))
        return events

    async def encode(updates: list[Update]) -> list[bytes]:
        return await changed_parts()

    async def quiet() -> list[bytes]:
        # A run that has not started changes only by events (its status); one that runs also
        # grows its bars and sends spans and logs, and its children change.
        started = bool(last) and last[0].run.status.value in STARTED
        return (await changed_parts(ticked=True) if started else []) or [sse.PING]

    access = StreamAccess(request, signed_in, nav.env.id)  # signed out, or out of the project: it ends
    events = follow(hub, sub, encode, wait=lambda: LIVE_TICK, until_final=True, quiet=quiet, access=access)
    return sse.EventStream(events, headers=sse.HEADERS)


# -- actions (CSRF checked by DashboardRoute before they run) ----------------------------------------


def _back(page_url: str, flash: str, **more: str) -> Response:
    return RedirectResponse(f"{page_url}?{urlencode({'flash': flash, **more})}", status_code=303)


@router.post(PAGE + "/cancel")
async def cancel(request: Request, project: str, env: str, run_id: str, signed_in: PageSession) -> Response:
    nav = await open_environment(request, signed_in, project, env, "runs")
    engine: RunEngine = request.app.state.engine
    url = f"{nav.url('runs')}/{run_id}"
    try:
        await run_in_threadpool(engine.control.cancel, nav.env, run_id)
    except ConflictError:  # it finished meanwhile (a run that is not there is a 404)
        return _back(url, "cancel-finished")
    return _back(url, "cancelled")


@router.post(PAGE + "/replay")
async def replay(request: Request, project: str, env: str, run_id: str, signed_in: PageSession) -> Response:
    nav = await open_environment(request, signed_in, project, env, "runs")
    engine: RunEngine = request.app.state.engine
    await run_in_threadpool(engine.core.get_run, nav.env, run_id)  # not there: the 404 page
    text = (await form_fields(request)).get("payload", "")
    error = None
    try:
        # Blank (the editor emptied) is the run's own payload; JSON ``null`` is typed as ``null``.
        payload = json.loads(text) if text.strip() else SAME_PAYLOAD
    except json.JSONDecodeError as exc:
        error = f"The payload is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
    else:
        try:
            new = await run_in_threadpool(engine.control.replay, nav.env, run_id, payload)
        except HightideError as exc:  # the payload does not fit the task's schema, the task is gone
            if exc.code == "server_error":
                raise
            error = exc.message
        else:
            return _back(f"{nav.url('runs')}/{new.id}", "replayed", **{"from": run_id})
    page = await run_in_threadpool(load, engine, nav, run_id)
    return await _show(request, page, signed_in, 422, replay_input=text, replay_error=error)


@router.post(PAGE + "/reset-key")
async def reset_key(request: Request, project: str, env: str, run_id: str, signed_in: PageSession) -> Response:
    nav = await open_environment(request, signed_in, project, env, "runs")
    engine: RunEngine = request.app.state.engine
    run = await run_in_threadpool(engine.core.get_run, nav.env, run_id)
    url = f"{nav.url('runs')}/{run.id}"
    if run.idempotency_key is None:
        return _back(url, "key-gone")
    reset = await run_in_threadpool(engine.triggering.reset_idempotency_key, nav.env, run.task_id, run.idempotency_key)
    return _back(url, "key-reset" if reset else "key-gone")
