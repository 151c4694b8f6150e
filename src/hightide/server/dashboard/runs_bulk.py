"""Bulk actions of the Runs page, as background jobs (``engine.bulk``, the same as
``POST /api/v1/bulk-actions``): cancel or replay the runs ticked, or every run matching the page's
filters, and abort one that is running.

- ``POST .../runs/bulk-cancel`` and ``.../runs/bulk-replay``: the runs ticked (``run`` fields), or,
  with ``selection=filter``, the runs the filters of the page (``back``, the page's URL) select.
  An action of every run of the environment (no filter) is refused: that is not done by accident.
- ``POST .../runs/bulk-actions/{id}/abort``: stop one after the page of runs it is on.
- ``GET .../runs/bulk-actions``: the "Bulk actions" strip alone, which the page polls while an
  action runs (``runs_bulk_view.py``).

Each action answers 303 back to the same filtered page, whose next view says what started; the
strip then shows its progress."""

from __future__ import annotations

from enum import StrEnum
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from hightide.engine.runs import RunEngine
from hightide.errors import HightideError, NotFoundError
from hightide.server.dashboard import runs_bulk_view
from hightide.server.dashboard.flash import Flash, flash
from hightide.server.dashboard.pages import open_environment
from hightide.server.dashboard.render import render
from hightide.server.dashboard.routing import DashboardRoute
from hightide.server.dashboard.runs_filters import RunsQuery
from hightide.server.dashboard.session import FragmentSession
from hightide.store.bulk import ABORTED
from hightide.store.records import BulkAction, Environment

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

RUNS = "/projects/{project}/env/{env}/runs"
WHERE = "its progress is under Bulk actions"


class Action(StrEnum):
    CANCEL = "cancel"
    REPLAY = "replay"


def _engine(request: Request) -> RunEngine:
    engine: RunEngine = request.app.state.engine
    return engine


def _runs(n: int) -> str:
    return f"{n:,} run" if n == 1 else f"{n:,} runs"


async def _form_lists(request: Request) -> dict[str, list[str]]:
    """Every value of each field of a urlencoded form (a list of ticked runs has many)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return {}
    body = (await request.body()).decode("utf-8", errors="replace")
    return parse_qs(body, keep_blank_values=True)


def back_to(target: str, base: str) -> str:
    """Where to go after an action: the same list (with its filters), never elsewhere."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.path != base:
        return base
    return f"{base}?{parts.query}" if parts.query else base


def ticked(values: list[str]) -> list[str]:
    return list(dict.fromkeys(v.strip() for v in values if v.strip()))


def start(engine: RunEngine, env: Environment, action: Action, fields: dict[str, list[str]], back: str) -> Flash:
    """Start ``action`` on what the form selects; what to tell the person who asked."""
    verb = "Cancel" if action is Action.CANCEL else "Replay"
    if (fields.get("selection") or [""])[0] == "filter":
        params = {name: values[0] for name, values in parse_qs(urlsplit(back).query).items() if values}
        query = RunsQuery.parse(params)
        if not query.filtered:
            return Flash(
                "error",
                "Set a filter first: acting on every run of the environment is not done by accident. "
                "Nothing was started.",
            )
        job = engine.bulk.create(env, action.value, flt=query.run_filter(engine.clock()))
        if not job.total:
            return Flash("ok", f"No runs match these filters now: nothing to {action.value}.")
        return Flash("ok", f"{verb} of all {_runs(job.total)} matching these filters started: {WHERE}.")
    ids = ticked(fields.get("run", []))
    if not ids:
        return Flash("error", "No runs selected: tick the runs to act on first.")
    job = engine.bulk.create(env, action.value, ids=ids)
    return Flash("ok", f"{verb} of {_runs(job.total)} started: {WHERE}.")


def abort(engine: RunEngine, env: Environment, bulk_id: str) -> Flash:
    view = runs_bulk_view.BulkView(engine.bulk.get(env, bulk_id))
    after: BulkAction = engine.bulk.abort(env, bulk_id) if view.running else view.action
    if after.status != ABORTED or not view.running:  # it had ended before, or ended meanwhile
        done = runs_bulk_view.BulkView(after)
        return Flash("ok", f"That {done.verb.lower()} had already finished ({done.status.lower()}): nothing to abort.")
    return Flash(
        "ok",
        f"Aborted the {view.verb.lower()} of {_runs(after.total)}: it stops after the page it is on. "
        f"What it did stays done ({after.processed:,} so far).",
    )


@router.get(RUNS + "/bulk-actions")
async def bulk_strip(request: Request, project: str, env: str, signed_in: FragmentSession) -> Response:
    """The strip alone (what the page polls while an action runs)."""
    nav = await open_environment(request, signed_in, project, env, "runs")
    base = nav.url("runs")
    views = await run_in_threadpool(runs_bulk_view.strip, _engine(request), nav.env)
    back = back_to(request.query_params.get("back", ""), base)
    return render(request, "_bulk_strip.html", signed_in=signed_in, nav=nav, bulk_views=views, back_url=back)


@router.post(RUNS + "/bulk-actions/{bulk_id}/abort")
async def abort_action(request: Request, project: str, env: str, bulk_id: str, signed_in: FragmentSession) -> Response:
    nav = await open_environment(request, signed_in, project, env, "runs")
    base = nav.url("runs")
    fields = await _form_lists(request)
    back = back_to((fields.get("back") or [""])[0], base)
    try:
        message = await run_in_threadpool(abort, _engine(request), nav.env, bulk_id)
    except NotFoundError:
        message = Flash("error", f"There is no bulk action {bulk_id!r} in {nav.env.project_slug} / {nav.env.slug}.")
    response = RedirectResponse(back, status_code=303)
    flash(request, response, base, message)
    return response


@router.post(RUNS + "/bulk-{action}")
async def bulk_action(request: Request, project: str, env: str, action: str, signed_in: FragmentSession) -> Response:
    nav = await open_environment(request, signed_in, project, env, "runs")
    if action not in Action.__members__.values():
        raise NotFoundError(f"the Runs page has no bulk action {action!r}; it has cancel and replay")
    base = nav.url("runs")
    fields = await _form_lists(request)
    back = back_to((fields.get("back") or [""])[0], base)
    try:
        message = await run_in_threadpool(start, _engine(request), nav.env, Action(action), fields, back)
    except HightideError as exc:  # a selection the engine refuses (too many ids, a wrong filter)
        if exc.code == "server_error":
            raise
        message = Flash("error", f"Nothing was started: {exc.message}")
    response = RedirectResponse(back, status_code=303)
    flash(request, response, base, message)
    return response


__all__ = ["Action", "abort", "back_to", "router", "start", "ticked"]
