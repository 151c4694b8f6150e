"""The Tasks page: every task of the environment's current version with its runs counted by status
(over a bounded period), and a page per task with its latest runs and a Test form that triggers a
run the way the API does."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from hightide.core.machines import DEFAULT_MACHINE, MACHINES
from hightide.core.retry import RetryPolicy
from hightide.core.states import RunStatus
from hightide.engine.options import batch_specs
from hightide.engine.runs import RunEngine
from hightide.errors import HightideError, NotFoundError
from hightide.server.dashboard.examples import example_for
from hightide.server.dashboard.jsonfield import read_json, shown_message
from hightide.server.dashboard.pages import Nav, open_environment
from hightide.server.dashboard.render import duration, render
from hightide.server.dashboard.routing import DashboardRoute
from hightide.server.dashboard.session import PageSession, form_fields
from hightide.server.errors import HTTP_STATUS
from hightide.store.records import Environment, Run, TaskDefinition, Version

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

LATEST_RUNS = 10
COUNT_LIMIT = 50_000
"""The counts cover the runs created in the period, the newest 50,000 at most: one grouped query
whose cost stays the same at any number of runs (about 0.2 s at the limit on SQLite)."""


@dataclass(frozen=True)
class Period:
    slug: str
    label: str  # "the last 24 hours"
    seconds: float


PERIODS = (Period("24h", "the last 24 hours", 86400.0), Period("7d", "the last 7 days", 7 * 86400.0))
PERIOD = {p.slug: p for p in PERIODS}

# The order counts are shown in: what needs a look first, then what is under way, then what is done.
COUNTED = (
    RunStatus.FAILED,
    RunStatus.CRASHED,
    RunStatus.SYSTEM_FAILURE,
    RunStatus.TIMED_OUT,
    RunStatus.EXECUTING,
    RunStatus.WAITING,
    RunStatus.QUEUED,
    RunStatus.DELAYED,
    RunStatus.PENDING_VERSION,
    RunStatus.COMPLETED,
    RunStatus.CANCELED,
    RunStatus.EXPIRED,
)


@dataclass(frozen=True)
class TaskView:
    """One task as the pages show it."""

    task: TaskDefinition
    counts: list[tuple[RunStatus, int]]  # nonzero only, in COUNTED order
    total: int

    @property
    def id(self) -> str:
        return self.task.task_id

    @property
    def machine(self) -> str:
        return str(self.task.config.get("machine") or DEFAULT_MACHINE)

    @property
    def machine_is_default(self) -> bool:
        return not self.task.config.get("machine")

    @property
    def retry(self) -> str:
        """``3 attempts, 1s → 1m backoff`` or ``no retries``."""
        policy = RetryPolicy.from_dict(self.task.config.get("retry") or {})
        if policy.max_attempts == 1:
            return "no retries"
        return f"{policy.max_attempts} attempts, {seconds(policy.min_timeout)} → {seconds(policy.max_timeout)} backoff"

    @property
    def description(self) -> str:
        return str(self.task.config.get("description") or "")

    @property
    def function(self) -> str:
        return str(self.task.config.get("function") or "")

    @property
    def max_duration(self) -> str:
        value = self.task.config.get("max_duration")
        return seconds(float(value)) if value else "none"

    @property
    def ttl(self) -> str:
        value = self.task.config.get("ttl")
        return seconds(float(value)) if value else "none"

    @property
    def schema_checked(self) -> bool:
        """Whether the server checks a payload against the schema (not when the model has
        validators the schema does not describe: the runner checks those)."""
        return self.schema is not None and bool(self.task.config.get("payload_schema_checked", True))

    @property
    def schema(self) -> dict[str, Any] | None:
        schema = self.task.config.get("payload_schema")
        return schema if isinstance(schema, dict) else None


def seconds(value: float) -> str:
    """``500ms``, ``30s``, ``5m 30s``, ``1h 30m``, ``2d 4h``."""
    if value < 1:
        return f"{int(value * 1000)}ms"
    if value < 60:
        return f"{value:g}s"
    for unit, size, small, small_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        if value >= size:
            whole, rest = divmod(int(value), size)
            return f"{whole}{unit}" + (f" {rest // small_size}{small}" if rest // small_size else "")
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Counted:
    """Runs counted by task and status over a period; ``capped``: only the newest COUNT_LIMIT."""

    period: Period
    by_task: dict[str, dict[str, int]]
    total: int

    @property
    def capped(self) -> bool:
        return self.total >= COUNT_LIMIT

    @property
    def limit(self) -> int:
        return COUNT_LIMIT


def count_runs(engine: RunEngine, env: Environment, period: Period) -> Counted:
    by_task, total = engine.store.runs.count_by_task(env.id, engine.clock() - period.seconds, COUNT_LIMIT)
    return Counted(period, by_task, total)


def view(task: TaskDefinition, counts: dict[str, int]) -> TaskView:
    shown = [(status, counts[status.value]) for status in COUNTED if counts.get(status.value)]
    return TaskView(task, shown, sum(counts.values()))


def task_url(nav: Nav, task_id: str) -> str:
    return f"{nav.url('tasks')}/{quote(task_id, safe='')}"


def _period(slug: str) -> Period:
    return PERIOD.get(slug, PERIODS[0])


@router.get("/projects/{project}/env/{env}/tasks")
async def tasks_page(request: Request, project: str, env: str, signed_in: PageSession, period: str = "") -> Response:
    nav = await open_environment(request, signed_in, project, env, "tasks")
    engine: RunEngine = request.app.state.engine
    chosen = _period(period)

    def load() -> tuple[Version | None, list[TaskView], Counted | None]:
        stores = engine.store.environments
        version = stores.current_version(nav.env.id)
        if version is None:
            return None, [], None
        tasks = stores.tasks_of_version(nav.env.id, version.id)
        counted = count_runs(engine, nav.env, chosen)
        return version, [view(task, counted.by_task.get(task.task_id, {})) for task in tasks], counted

    version, tasks, counted = await run_in_threadpool(load)
    return render(
        request,
        "tasks.html",
        signed_in=signed_in,
        nav=nav,
        version=version,
        tasks=tasks,
        counted=counted,
        period=chosen,
        periods=PERIODS,
        task_url=lambda task_id: task_url(nav, task_id),
    )


@dataclass
class TestForm:
    """The Test form's fields, as typed (kept as they were when the form comes back with an error)."""

    payload: str
    delay: str = ""
    tags: str = ""
    idempotency_key: str = ""
    machine: str = ""
    error: str = ""
    error_field: str = ""
    FIELDS: ClassVar[tuple[str, ...]] = ("payload", "delay", "tags", "idempotency_key", "machine")

    @classmethod
    def prefilled(cls, task: TaskView) -> TestForm:
        return cls(payload=json.dumps(example_for(task.schema), indent=2, ensure_ascii=False))

    @classmethod
    def posted(cls, fields: dict[str, str]) -> TestForm:
        return cls(
            payload=fields.get("payload", ""),
            delay=fields.get("delay", "").strip(),
            tags=fields.get("tags", "").strip(),
            idempotency_key=fields.get("idempotency_key", "").strip(),
            machine=fields.get("machine", "").strip(),
        )

    def options(self) -> dict[str, Any]:
        """The trigger options the form names, as the API takes them (empty fields left out)."""
        options: dict[str, Any] = {}
        if self.delay:
            options["delay"] = self.delay
        tags = [tag.strip() for tag in self.tags.split(",") if tag.strip()]
        if tags:
            options["tags"] = tags
        if self.idempotency_key:
            options["idempotency_key"] = self.idempotency_key
        if self.machine:
            options["machine"] = self.machine
        return options


def cli_payload(task: TaskView) -> str:
    """The schema's example as one line for a shell's single quotes (``{}`` if it does not fit)."""
    text = json.dumps(example_for(task.schema), ensure_ascii=False)
    return text if len(text) <= 160 and "'" not in text else "{}"


def _load_task(engine: RunEngine, env: Environment, task_id: str) -> tuple[TaskView, Counted, list[Run]]:
    task = engine.store.environments.get_task(env.id, task_id)
    if task is None:
        raise NotFoundError(
            f"there is no task {task_id!r} in {env.project_slug} / {env.slug}; the Tasks page lists the tasks "
            "of the current version"
        )
    counted = count_runs(engine, env, PERIODS[0])  # the same query as the list, so the numbers agree
    runs = engine.store.runs.latest_of_task(env.id, task_id, LATEST_RUNS)
    return view(task, counted.by_task.get(task_id, {})), counted, runs


async def _task_page(
    request: Request, signed_in: Any, nav: Nav, task_id: str, form: TestForm | None, status_code: int = 200
) -> Response:
    engine: RunEngine = request.app.state.engine
    task, counted, runs = await run_in_threadpool(_load_task, engine, nav.env, task_id)
    return render(
        request,
        "task.html",
        status_code,
        signed_in=signed_in,
        nav=nav,
        task=task,
        runs=runs,
        form=form or TestForm.prefilled(task),
        machines=MACHINES,
        counted=counted,
        this_url=task_url(nav, task.id),
        schema_json=json.dumps(task.schema, indent=2, ensure_ascii=False) if task.schema else "",
        cli_payload=cli_payload(task),
        runs_url=f"{nav.url('runs')}?task={quote(task.id, safe='')}",
        duration=duration,
    )


@router.get("/projects/{project}/env/{env}/tasks/{task_id:path}")
async def task_page(request: Request, project: str, env: str, task_id: str, signed_in: PageSession) -> Response:
    nav = await open_environment(request, signed_in, project, env, "tasks")
    return await _task_page(request, signed_in, nav, task_id, None)


@router.post("/projects/{project}/env/{env}/tasks/{task_id:path}")
async def test_task(request: Request, project: str, env: str, task_id: str, signed_in: PageSession) -> Response:
    """The Test form: trigger one run as ``POST /api/v1/tasks/{task_id}/trigger`` does (the same
    options, the payload checked against the task's schema) and open it; a mistake shows the form
    again, as typed, with the reason."""
    nav = await open_environment(request, signed_in, project, env, "tasks")
    engine: RunEngine = request.app.state.engine
    form = TestForm.posted(await form_fields(request))

    def trigger() -> str:
        payload = read_json(form.payload, "payload")
        specs = batch_specs(task_id, [(None, payload, form.options())], engine.clock(), single=True)
        [(run, _cached)] = engine.triggering.trigger(nav.env, specs)
        return run.id

    try:
        run_id = await run_in_threadpool(trigger)
    except NotFoundError:
        raise
    except HightideError as exc:
        if exc.code == "server_error":
            raise
        form.error = shown_message(exc)
        where = str(exc.details.get("field", ""))
        form.error_field = next((name for name in form.FIELDS if where.removeprefix("options.").startswith(name)), "")
        return await _task_page(request, signed_in, nav, task_id, form, HTTP_STATUS.get(exc.code, 422))
    return RedirectResponse(f"{nav.url('runs')}/{run_id}", status_code=303)
