"""The Queues page: each queue with its runs executing and queued now, its concurrency limit (as
declared, or as overridden) and the environment's, and whether it is paused. Its actions (pause,
resume, override and reset the limit) are in ``queues_actions.py``."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from hightide.core.limits import MAX_INT
from hightide.engine.queues import QueueState
from hightide.engine.runs import RunEngine
from hightide.server.dashboard.flash import clear_flash, read_flash
from hightide.server.dashboard.pages import open_environment
from hightide.server.dashboard.render import render
from hightide.server.dashboard.routing import DashboardRoute
from hightide.server.dashboard.session import PageSession
from hightide.store.records import Environment, Queue

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)


@dataclass(frozen=True)
class QueueView:
    state: QueueState

    @property
    def queue(self) -> Queue:
        return self.state.queue

    @property
    def name(self) -> str:
        return self.state.name

    @property
    def running(self) -> int:
        return self.state.executing

    @property
    def queued(self) -> int:
        return self.state.queued

    @property
    def tasks(self) -> list[str]:
        return self.state.tasks

    @property
    def limit(self) -> int | None:
        return self.queue.limit

    @property
    def declared(self) -> int | None:
        return self.queue.concurrency_limit

    @property
    def overridden(self) -> bool:
        return self.queue.concurrency_limit_override is not None

    @property
    def paused(self) -> bool:
        return self.queue.paused

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
    views = [QueueView(state) for state in engine.queues.list(env)]
    # Queues in use first (what someone opening this page looks for), then by name.
    views.sort(key=lambda q: (-(q.running + q.queued), q.name))
    load = EnvironmentLoad(env.concurrency_limit, sum(q.running for q in views), sum(q.queued for q in views))
    return views, load


@router.get("/projects/{project}/env/{env}/queues")
async def queues_page(request: Request, project: str, env: str, signed_in: PageSession) -> Response:
    nav = await open_environment(request, signed_in, project, env, "queues")
    engine: RunEngine = request.app.state.engine
    queues, load = await run_in_threadpool(load_queues, engine, nav.env)
    notice = read_flash(request)
    response = render(
        request,
        "queues.html",
        signed_in=signed_in,
        nav=nav,
        queues=queues,
        load=load,
        notice=notice,
        max_limit=MAX_INT,
        now=engine.clock(),
    )
    clear_flash(request, response, nav.url("queues"))
    return response
