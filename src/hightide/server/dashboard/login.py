"""``/login`` (and the redemption of a login link) and ``POST /logout``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from hightide.server.dashboard.render import render
from hightide.server.dashboard.routing import DashboardRoute
from hightide.server.dashboard.session import (
    COOKIE,
    LOGIN_PATH,
    PageSession,
    clear_session_cookie,
    find_session,
    safe_next,
    set_session_cookie,
    signin_of,
)

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

BAD_LINK = (
    "This sign-in link does not work: it was used already, it expired (links last 24 hours), or it is "
    "incomplete. Ask for a new one."
)


def _token_of(value: str) -> str:
    """A pasted token, or the whole link it came in."""
    value = value.strip()
    if "token=" in value:
        value = value.split("token=", 1)[1].split("&", 1)[0]
    return value


@router.get(LOGIN_PATH)
async def login(request: Request, token: str | None = None, next: str | None = None) -> Response:
    target = safe_next(next)
    response: Response
    if token is None:
        signed_in = await find_session(request)
        if signed_in is not None and request.query_params.get("signed_out") is None:
            return RedirectResponse(target, status_code=303)
        notice = "You are signed out." if request.query_params.get("signed_out") else None
        response = render(request, "login.html", signed_in=None, next=target, error=None, notice=notice, nav=None)
    else:
        signin = signin_of(request)
        signed_in = await run_in_threadpool(signin.redeem, _token_of(token))
        if signed_in is None:
            response = render(
                request, "login.html", 401, signed_in=None, next=target, error=BAD_LINK, notice=None, nav=None
            )
        else:
            previous = request.cookies.get(COOKIE)
            if previous:  # one browser, one session: the one it had ends here
                await run_in_threadpool(signin.sign_out, previous)
            response = RedirectResponse(target, status_code=303)
            set_session_cookie(request, response, signed_in)
    # The address bar may hold a token: no page it links to learns it.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@router.post("/logout")
async def logout(request: Request, signed_in: PageSession) -> Response:
    await run_in_threadpool(signin_of(request).sign_out, signed_in.token)
    response = RedirectResponse(f"{LOGIN_PATH}?signed_out=1", status_code=303)
    clear_session_cookie(request, response)
    return response
