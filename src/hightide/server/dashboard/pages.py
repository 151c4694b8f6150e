"""The dashboard's pages, each at a stable URL scoped to one project environment:
``/projects/{project}/env/{env}/{section}``. ``/`` opens the first environment the user may see."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from hightide.engine.signin import SignedIn
from hightide.errors import NotFoundError
from hightide.server.dashboard.render import render
from hightide.server.dashboard.routing import DashboardRoute
from hightide.server.dashboard.session import PageSession, signin_of
from hightide.store.records import Environment

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)


@dataclass(frozen=True)
class Section:
    slug: str
    title: str
    coming: bool  # its issue is still to come: a place in the navigation, marked
    summary: str  # what a page still to come will show and do


SECTIONS = (
    Section("runs", "Runs", False, ""),
    Section("tasks", "Tasks", False, ""),
    Section("schedules", "Schedules", False, ""),
    Section("queues", "Queues", False, ""),
    Section("tokens", "Tokens", False, ""),
    Section("alerts", "Alerts", False, ""),
    Section("deployments", "Deployments", True, "Deployed versions, which one is current, and Promote."),
    Section("environment", "Environment", False, ""),
)
SECTION = {s.slug: s for s in SECTIONS}


@dataclass(frozen=True)
class Nav:
    """What the header needs: where we are and where the user may go."""

    env: Environment
    environments: list[Environment]
    section: Section
    sections: tuple[Section, ...] = SECTIONS

    def url(self, section: str, env: Environment | None = None) -> str:
        target = env or self.env
        return f"/projects/{target.project_slug}/env/{target.slug}/{section}"


async def open_environment(request: Request, signed_in: SignedIn, project: str, env: str, section: str) -> Nav:
    """The navigation of one environment the user may see; a 404 page if there is no such
    environment or it belongs to a project the user is not a member of (the same answer)."""
    environments = await run_in_threadpool(signin_of(request).environments, signed_in.user)
    for candidate in environments:
        if candidate.project_slug == project and candidate.slug == env:
            return Nav(candidate, environments, SECTION[section])
    raise NotFoundError(f"there is no environment {env!r} of project {project!r} that you can see")


@router.get("/")
async def home(request: Request, signed_in: PageSession) -> Response:
    environments = await run_in_threadpool(signin_of(request).environments, signed_in.user)
    if not environments:
        message = "You are not a member of any project yet: an admin can add you (`hightide users create`)."
        return render(request, "error.html", 200, signed_in=signed_in, status=None, message=message, nav=None)
    first = environments[0]
    return RedirectResponse(f"/projects/{first.project_slug}/env/{first.slug}/runs", status_code=303)


@router.get("/projects/{project}/env/{env}")
async def environment_home(project: str, env: str, signed_in: PageSession) -> Response:
    return RedirectResponse(f"/projects/{project}/env/{env}/runs", status_code=303)


@router.get("/projects/{project}/env/{env}/{section}")
async def section_page(request: Request, project: str, env: str, section: str, signed_in: PageSession) -> Response:
    if section not in SECTION:  # the built pages have their own routes, matched before this one
        raise NotFoundError(f"the dashboard has no page {section!r}; see the navigation for its pages")
    nav = await open_environment(request, signed_in, project, env, section)
    return render(request, "section.html", signed_in=signed_in, nav=nav)
