"""The Queues page: each queue with its runs executing and queued now, its concurrency limit and
the environment's. (Pausing a queue and overriding its limit come later; ``QueueView`` is where a
queue's actions will go.)"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from hightide.core.states import RunStatus
from hightide.engine import RunEngine
from hightide.server.dashboard.pages import open_environment
from hightide.server.dashboard.render import render
from hightide.server.dashboard.routing import DashboardRoute
from hightide.server.dashboard.session import PageSession
from hightide.store.records import Environment, Queue

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)


@dataclass(frozen=True)
class QueueView:
    queue: Queue
    running: int
    queued: int
    tasks: list[str] = field(default_factory=list)  # tasks of the current version that use it
    declared: bool = True  # False: runs name it, but no registered task declares it

    @property
    def name(self) -> str:
        return self.queue.name

    @property
    def limit(self) -> int | None:
        return self.queue.concurrency_limit

    @property
    def full(self) -> bool:
        return self.limit is not None and self.running >= self.limit

    @property
    def use(self) -> int:
        """Percent of its own limit in use (0 without a limit; a limit of 0 is always full)."""
        if self.limit is None:
            return 0
        return min(100, round(100 * self.running / self.limit)) if self.limit else 100


@dataclass(frozen=True)
class EnvironmentLoad:
    limit: int
    running: int
    queued: int

    @property
    def use(self) -> int:
        return min(100, round(100 * self.running / self.limit)) if self.limit else 100


def load_queues(engine: RunEngine, env: Environment) -> tuple[list[QueueView], EnvironmentLoad]:
    store = engine.store
    queues = {q.name: q for q in store.environments.list_queues(env.id)}
    counts = store.runs.count_active_by_queue(env.id)
    users: dict[str, list[str]] = {}
    version = store.environments.current_version(env.id)
    if version is not None:
        for task in store.environments.tasks_of_version(env.id, version.id):
            users.setdefault(task.queue, []).append(task.task_id)
    views = []
    for name in sorted(set(queues) | set(counts)):
        n = counts.get(name, {})
        views.append(
            QueueView(
                queues.get(name, Queue(name, None)),
                running=n.get(RunStatus.EXECUTING.value, 0),
                queued=n.get(RunStatus.QUEUED.value, 0),
                tasks=users.get(name, []),
                declared=name in queues,
            )
        )
    # Queues in use first (what someone opening this page looks for), then by name.
    views.sort(key=lambda q: (-(q.running + q.queued), q.name))
    load = EnvironmentLoad(env.concurrency_limit, sum(q.running for q in views), sum(q.queued for q in views))
    return views, load


@router.get("/projects/{project}/env/{env}/queues")
async def queues_page(request: Request, project: str, env: str, signed_in: PageSession) -> Response:
    nav = await open_environment(request, signed_in, project, env, "queues")
    engine: RunEngine = request.app.state.engine
    queues, load = await run_in_threadpool(load_queues, engine, nav.env)
    return render(request, "queues.html", signed_in=signed_in, nav=nav, queues=queues, load=load)
