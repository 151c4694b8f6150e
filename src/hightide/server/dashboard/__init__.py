"""The dashboard: server-rendered pages behind a sign-in (SPEC §5, docs/dashboard.md).

``install(app, signin)`` adds the login page, the pages, and the static files (one stylesheet and
vendored htmx) to the server; every page, fragment and stream requires a session."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response

from hightide.engine.signin import SignIn
from hightide.server.dashboard import (
    alerts,
    environment,
    login,
    pages,
    queues,
    queues_actions,
    run,
    runs,
    runs_bulk,
    schedules,
    tasks,
    tokens,
)
from hightide.server.dashboard.files import CachedStatic
from hightide.server.dashboard.render import STATIC, STATIC_URL
from hightide.server.dashboard.session import (
    FragmentSession,
    PageSession,
    SignInRequired,
    sign_in_required_response,
)

__all__ = ["FragmentSession", "PageSession", "install"]


def install(app: FastAPI, signin: SignIn) -> None:
    app.state.signin = signin
    app.mount(STATIC_URL, CachedStatic(directory=STATIC), name="dashboard-static")
    # One router per page; ``pages.router`` last: its ``/{section}`` route answers the pages to come.
    routers = (runs, runs_bulk, run, tasks, schedules, queues, queues_actions, tokens, alerts, environment)
    for router in (login.router, *(page.router for page in routers), pages.router):
        app.include_router(router)

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:  # routes outside DashboardRoute
        return sign_in_required_response(request, exc)
