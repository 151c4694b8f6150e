"""The Runs page: newest first, filtered by status, task and tag, paged by cursor."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from hightide.core.states import RunStatus
from hightide.engine import RunEngine
from hightide.server.dashboard.pages import open_environment
from hightide.server.dashboard.render import render
from hightide.server.dashboard.routing import DashboardRoute
from hightide.server.dashboard.session import PageSession
from hightide.store.records import RunFilter

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

RUNS_PAGE_SIZE = 50


@router.get("/projects/{project}/env/{env}/runs")
async def runs_page(
    request: Request,
    project: str,
    env: str,
    signed_in: PageSession,
    status: str = "",
    task: str = "",
    tag: str = "",
    cursor: str | None = None,
) -> Response:
    nav = await open_environment(request, signed_in, project, env, "runs")
    flt = RunFilter(
        statuses=(status,) if status else (), task_ids=(task.strip(),) if task.strip() else (), tag=tag.strip() or None
    )
    engine: RunEngine = request.app.state.engine
    runs, next_cursor = await run_in_threadpool(engine.core.list_runs, nav.env, flt, RUNS_PAGE_SIZE, cursor or None)
    filters = {"status": status, "task": task.strip(), "tag": tag.strip()}
    kept = {name: value for name, value in filters.items() if value}
    base = nav.url("runs")
    return render(
        request,
        "runs.html",
        signed_in=signed_in,
        nav=nav,
        runs=runs,
        next_cursor=next_cursor,
        first_page=cursor is None,
        filters=filters,
        filtered=bool(kept),
        newest_url=f"{base}?{urlencode(kept)}" if kept else base,
        next_url=f"{base}?{urlencode({**kept, 'cursor': next_cursor})}" if next_cursor else None,
        statuses=list(RunStatus),
    )
