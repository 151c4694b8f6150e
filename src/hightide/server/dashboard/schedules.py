"""The Schedules page: the environment's cron schedules, declarative (in code) and imperative (made
from the API, the CLI or here), with their next ticks and last run; activate and deactivate any,
delete an imperative one (after confirming), and create one with a form.

Actions go through the engine's ``schedules`` as ``/api/v1/schedules/...`` do. Each is a form POST
(CSRF-checked by ``DashboardRoute``) answering 303 back to the page with one message; a create that
the engine refuses shows the page again with the form as typed and the reason."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from hightide.core.cron import timezones
from hightide.engine.runs import RunEngine
from hightide.engine.schedules import DECLARATIVE, IMPERATIVE, ScheduleState, schedule_tag
from hightide.errors import HightideError, NotFoundError
from hightide.server.dashboard.flash import Flash, acted, back_to, clear_flash, read_flash
from hightide.server.dashboard.pages import Nav, open_environment
from hightide.server.dashboard.render import render
from hightide.server.dashboard.routing import DashboardRoute
from hightide.server.dashboard.session import PageSession, form_fields
from hightide.server.dashboard.tokens import until
from hightide.server.errors import HTTP_STATUS
from hightide.store.records import Environment

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

PAGE = "/projects/{project}/env/{env}/schedules"
SCHEDULES_PAGE_SIZE = 50
EXAMPLES = (("0 * * * *", "every hour"), ("*/15 * * * *", "every 15 minutes"), ("0 9 * * 1-5", "9:00 on weekdays"))


def local(ts: float, timezone: str) -> str:
    """``ts`` on the clock of the schedule's timezone, as its pattern reads: ``2026-12-02 09:00``."""
    return datetime.fromtimestamp(ts, ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")


class ScheduleAction(StrEnum):
    ACTIVATE = "activate"
    DEACTIVATE = "deactivate"
    DELETE = "delete"


@dataclass(frozen=True)
class Draft:
    """A schedule being created, as typed (kept when the engine refuses it, with why)."""

    task: str = ""
    cron: str = ""
    timezone: str = "UTC"
    external_id: str = ""
    deduplication_key: str = ""
    error: str = ""


def act(engine: RunEngine, env: Environment, action: ScheduleAction, schedule_id: str) -> Flash:
    """Do ``action`` to the schedule; what to tell the person who asked."""
    state = engine.schedules.get(env, schedule_id)  # unknown: NotFoundError, before anything changes
    what = f"{state.schedule.task_id} ({state.schedule.cron})"
    if action is ScheduleAction.ACTIVATE:
        if state.schedule.active:
            return Flash("ok", f"The schedule of {what} was already active: nothing changed.")
        engine.schedules.activate(env, schedule_id)
        return Flash("ok", f"Activated the schedule of {what}: it fires from its next tick (missed ticks do not fire).")
    if action is ScheduleAction.DEACTIVATE:
        if not state.schedule.active:
            return Flash("ok", f"The schedule of {what} was already inactive: nothing changed.")
        engine.schedules.deactivate(env, schedule_id)
        return Flash("ok", f"Deactivated the schedule of {what}: it fires no more until you activate it.")
    engine.schedules.delete(env, schedule_id)  # a declarative one: ValidationError, saying why
    return Flash("ok", f"Deleted the schedule of {what}; the runs it fired stay.")


async def _page(
    request: Request,
    signed_in: object,
    nav: Nav,
    kind: str,
    cursor: str | None,
    draft: Draft | None = None,
    status_code: int = 200,
) -> Response:
    engine: RunEngine = request.app.state.engine
    kind = kind if kind in (DECLARATIVE, IMPERATIVE) else ""

    def load() -> tuple[list[ScheduleState], str | None, list[str]]:
        found, next_cursor = engine.schedules.list(nav.env, SCHEDULES_PAGE_SIZE, cursor, kind=kind or None)
        stores = engine.store.environments
        version = stores.current_version(nav.env.id)
        tasks = [] if version is None else [t.task_id for t in stores.tasks_of_version(nav.env.id, version.id)]
        return found, next_cursor, sorted(tasks)

    schedules, next_cursor, tasks = await run_in_threadpool(load)
    base = nav.url("schedules")
    kept = {"kind": kind} if kind else {}
    notice = None if draft is not None else read_flash(request)
    response = render(
        request,
        "schedules.html",
        status_code,
        signed_in=signed_in,
        nav=nav,
        schedules=schedules,
        kind=kind,
        tasks=tasks,
        timezones=timezones(),
        draft=draft or Draft(task=tasks[0] if len(tasks) == 1 else ""),
        examples=EXAMPLES,
        notice=notice,
        first_page=cursor is None,
        newest_url=f"{base}?{urlencode(kept)}" if kept else base,
        next_url=f"{base}?{urlencode({**kept, 'cursor': next_cursor})}" if next_cursor else None,
        runs_url=lambda schedule_id: f"{nav.url('runs')}?{urlencode({'tag': schedule_tag(schedule_id)})}",
        until=functools.partial(until, now=engine.clock()),
        local=local,
    )
    if notice is not None:
        clear_flash(request, response, base)
    return response


@router.get(PAGE)
async def schedules_page(
    request: Request, project: str, env: str, signed_in: PageSession, kind: str = "", cursor: str | None = None
) -> Response:
    nav = await open_environment(request, signed_in, project, env, "schedules")
    return await _page(request, signed_in, nav, kind, cursor or None)


@router.post(PAGE + "/create")
async def create_schedule(request: Request, project: str, env: str, signed_in: PageSession) -> Response:
    nav = await open_environment(request, signed_in, project, env, "schedules")
    engine: RunEngine = request.app.state.engine
    fields = await form_fields(request)
    draft = Draft(
        task=fields.get("task", "").strip(),
        cron=" ".join(fields.get("cron", "").split()),
        timezone=fields.get("timezone", "").strip() or "UTC",
        external_id=fields.get("external_id", "").strip(),
        deduplication_key=fields.get("deduplication_key", "").strip(),
    )

    def create() -> tuple[ScheduleState, bool]:
        return engine.schedules.create(
            nav.env,
            draft.task,
            draft.cron,
            draft.timezone,
            external_id=draft.external_id or None,
            deduplication_key=draft.deduplication_key or None,
        )

    try:
        if not draft.task or not draft.cron:
            raise _Missing("Choose a task and type a cron pattern (five fields, such as 0 * * * *).")
        state, created = await run_in_threadpool(create)
    except _Missing as exc:
        return await _page(request, signed_in, nav, "", None, Draft(**{**draft.__dict__, "error": str(exc)}), 422)
    except HightideError as exc:
        if exc.code == "server_error":
            raise
        failed = Draft(**{**draft.__dict__, "error": exc.message})
        return await _page(request, signed_in, nav, "", None, failed, HTTP_STATUS.get(exc.code, 422))
    made = "Created" if created else "Updated (its deduplication key names it)"
    message = Flash("ok", f"{made} the schedule of {draft.task} ({state.schedule.cron}, {state.schedule.timezone}).")
    return back_to(request, nav.url("schedules"), message)


class _Missing(ValueError):
    pass


@router.post(PAGE + "/{action}")
async def schedule_action(request: Request, project: str, env: str, action: str, signed_in: PageSession) -> Response:
    nav = await open_environment(request, signed_in, project, env, "schedules")
    if action not in ScheduleAction.__members__.values():
        raise NotFoundError(f"the Schedules page has no action {action!r}; it has activate, deactivate and delete")
    fields = await form_fields(request)
    schedule_id = fields.get("schedule", "").strip()
    engine: RunEngine = request.app.state.engine
    page = nav.url("schedules")
    if not schedule_id:
        return back_to(request, page, Flash("error", "No schedule named: use the buttons of a schedule's row."))
    return await acted(
        request,
        page,
        lambda: act(engine, nav.env, ScheduleAction(action), schedule_id),
        lambda exc: f"Could not {action} {schedule_id}: {exc.message}",
    )
