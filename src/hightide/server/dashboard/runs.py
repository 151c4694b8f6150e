"""The Runs page: newest first, filtered (status, task, tag, version, when created), paged by cursor,
live, with a run id search and bulk actions (on the runs ticked, or on all that match the filters).

``GET .../runs`` is the page; the same URL asked for ``text/event-stream`` (what ``EventSource``
asks for) is its live stream (``runs_live.py``), so the page and its stream read one set of
filters. Its bulk actions are background jobs (``runs_bulk.py``), shown with their progress in the
page's "Bulk actions" strip (``runs_bulk_view.py``)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from hightide.core.states import RunStatus
from hightide.engine.runs import RunEngine
from hightide.engine.signin import SignedIn
from hightide.errors import NotFoundError
from hightide.server.dashboard import runs_bulk_view, runs_live
from hightide.server.dashboard.flash import Flash, clear_flash, read_flash
from hightide.server.dashboard.pages import Nav, open_environment
from hightide.server.dashboard.render import render
from hightide.server.dashboard.routing import DashboardRoute
from hightide.server.dashboard.runs_filters import PERIODS, RunsQuery
from hightide.server.dashboard.session import SignInRequired, find_session
from hightide.store.records import Environment, RunFilter

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

RUNS_PAGE_SIZE = 50
RUNS = "/projects/{project}/env/{env}/runs"


def _engine(request: Request) -> RunEngine:
    engine: RunEngine = request.app.state.engine
    return engine


def _wants_stream(request: Request) -> bool:
    return "text/event-stream" in request.headers.get("accept", "")


@router.get(RUNS)
async def runs_page(request: Request, project: str, env: str) -> Response:
    streaming = _wants_stream(request)
    signed_in = await find_session(request)
    if signed_in is None:
        raise SignInRequired(page=not streaming)  # a stream answers 401, a page leads to the login page
    nav = await open_environment(request, signed_in, project, env, "runs")
    params = dict(request.query_params)
    query = RunsQuery.parse(params)
    if streaming:
        return await runs_live.stream(
            request, signed_in, nav, query, RUNS_PAGE_SIZE, request.headers.get("last-event-id")
        )
    searched = params.get("run", "").strip()
    if searched:
        found = await _find_run(request, nav, searched)
        if found:
            return RedirectResponse(f"{nav.url('runs')}/{searched}", status_code=303)
        notice = Flash("error", f"There is no run {searched!r} in {nav.env.project_slug} / {nav.env.slug}.")
        return await _page(request, signed_in, nav, query, notice, searched, 404)
    return await _page(request, signed_in, nav, query, read_flash(request), "", 200)


async def _find_run(request: Request, nav: Nav, run_id: str) -> bool:
    try:
        await run_in_threadpool(_engine(request).core.get_run, nav.env, run_id)
    except NotFoundError:
        return False
    return True


async def _page(
    request: Request, signed_in: SignedIn, nav: Nav, query: RunsQuery, notice: Flash | None, searched: str, status: int
) -> Response:
    engine = _engine(request)
    now = engine.clock()
    flt = query.run_filter(now)
    runs, next_cursor = await run_in_threadpool(engine.core.list_runs, nav.env, flt, RUNS_PAGE_SIZE, query.cursor)
    matching = await run_in_threadpool(_count, engine, nav.env, flt) if query.filtered else None
    bulk_views = await run_in_threadpool(runs_bulk_view.strip, engine, nav.env)
    base = nav.url("runs")
    back = query.url(base, cursor=query.cursor)
    response = render(
        request,
        "runs.html",
        status,
        signed_in=signed_in,
        nav=nav,
        runs=runs,
        runs_url=base,
        next_cursor=next_cursor,
        first_page=query.first_page,
        filters=query.values,
        filtered=query.filtered,
        newest_url=query.url(base),
        next_url=query.url(base, cursor=next_cursor) if next_cursor else None,
        back_url=back,
        stream_url=runs_live.stream_url(back, now, runs[0] if runs and query.first_page else None),
        statuses=list(RunStatus),
        periods=PERIODS,
        notice=notice,
        searched=searched,
        matching=matching,
        bulk_views=bulk_views,
    )
    clear_flash(request, response, base)
    return response


def _count(engine: RunEngine, env: Environment, flt: RunFilter) -> int:
    """How many runs the filters select now: what "Cancel all N matching" acts on."""
    return engine.core.store.runs.count_runs(env.id, flt)
