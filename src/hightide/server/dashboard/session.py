"""Who is signed in: the session cookie, the dependencies that require it, and the CSRF check.

Pages take ``PageSession`` (no session: a redirect to ``/login``); fragments and streams take
``FragmentSession`` (no session: 401, with ``HX-Redirect`` so that htmx goes to the login page).
Every state-changing request of the dashboard is checked by ``DashboardRoute`` (``routing.py``)
with ``check_csrf`` before its handler runs. A live stream outlives the request that opened it:
``StreamAccess`` re-checks, while it is open, that its session still is and may still see the
environment (``server/follow.py`` ends the stream when it may not)."""

from __future__ import annotations

import logging
import time
from typing import Annotated
from urllib.parse import parse_qs, quote

from fastapi import Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse

from hightide.engine.signin import SESSION_SECONDS, SignedIn, SignIn
from hightide.server.errors import error_body

log = logging.getLogger(__name__)

COOKIE = "hightide_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
LOGIN_PATH = "/login"
RECHECK_SECONDS = 30.0
"""How long a live stream goes on on its last check of its session (``app.state.dashboard_recheck``
overrides it): signing out, the session's expiry or leaving the project end it within that."""


class SignInRequired(Exception):
    """No live session. ``page``: answer with a redirect to the login page, else with a 401."""

    def __init__(self, page: bool) -> None:
        super().__init__("sign in to the dashboard first")
        self.page = page


class CsrfRefused(Exception):
    """A state-changing request without its session's CSRF token."""


def signin_of(request: Request) -> SignIn:
    signin: SignIn = request.app.state.signin
    return signin


async def find_session(request: Request) -> SignedIn | None:
    cached: SignedIn | None = getattr(request.state, "signed_in", None)
    if cached is not None:
        return cached
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    found = await run_in_threadpool(signin_of(request).session, token)
    request.state.signed_in = found
    return found


async def page_session(request: Request) -> SignedIn:
    found = await find_session(request)
    if found is None:
        raise SignInRequired(page=True)
    return found


async def fragment_session(request: Request) -> SignedIn:
    found = await find_session(request)
    if found is None:
        raise SignInRequired(page=False)
    return found


PageSession = Annotated[SignedIn, Depends(page_session)]
FragmentSession = Annotated[SignedIn, Depends(fragment_session)]


class StreamAccess:
    """Whether a live stream of the dashboard may go on (``server/follow.py``'s ``Access``): its
    session is still live and its user still sees ``environment_id``, the same check as
    ``open_environment``'s. Checked in a thread at most every ``RECHECK_SECONDS``; the answer is
    kept in between, and a no is final. A failed check (the database away) is a no: the browser
    reconnects, and its new request checks again."""

    def __init__(self, request: Request, signed_in: SignedIn, environment_id: str) -> None:
        self.signin = signin_of(request)
        self.token = signed_in.token
        self.environment_id = environment_id
        self.every = float(getattr(request.app.state, "dashboard_recheck", RECHECK_SECONDS))
        self.checked_at = time.monotonic()  # the request that opened the stream just checked
        self.allowed = True

    def due_in(self) -> float:
        return max(0.0, self.checked_at + self.every - time.monotonic())

    async def __call__(self) -> bool:
        if self.allowed and self.due_in() <= 0:
            try:
                self.allowed = await run_in_threadpool(self._check)
            except Exception:
                log.warning("a live stream's session check failed: the stream ends", exc_info=True)
                self.allowed = False
            self.checked_at = time.monotonic()
        return self.allowed

    def _check(self) -> bool:
        found = self.signin.session(self.token, touch=False)
        if found is None:
            return False
        return any(env.id == self.environment_id for env in self.signin.environments(found.user))


async def form_fields(request: Request) -> dict[str, str]:
    """The fields of a urlencoded form body (the first value of each), read once per request. The
    body is bounded by the server's body limit."""
    cached: dict[str, str] | None = getattr(request.state, "form_fields", None)
    if cached is not None:
        return cached
    fields: dict[str, str] = {}
    if request.headers.get("content-type", "").split(";")[0].strip() == "application/x-www-form-urlencoded":
        body = (await request.body()).decode("utf-8", errors="replace")
        fields = {name: values[0] for name, values in parse_qs(body, keep_blank_values=True).items()}
    request.state.form_fields = fields
    return fields


async def check_csrf(request: Request) -> SignedIn:
    """The session of a state-changing request, which must carry its CSRF token in the
    ``X-CSRF-Token`` header or the ``csrf_token`` form field (compared in constant time)."""
    signed_in = await fragment_session(request)
    given = request.headers.get(CSRF_HEADER)
    if given is None:
        given = (await form_fields(request)).get(CSRF_FIELD)
    if not signed_in.csrf_matches(given):
        raise CsrfRefused()
    return signed_in


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this site only (never ``//host`` or a URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def sign_in_required_response(request: Request, exc: SignInRequired) -> Response:
    if exc.page and request.method in ("GET", "HEAD") and "hx-request" not in request.headers:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        location = LOGIN_PATH if target == "/" else f"{LOGIN_PATH}?next={quote(target, safe='')}"
        return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})
    body = error_body("authentication_error", "no dashboard session: sign in at /login with a login link")
    return JSONResponse(body, status_code=401, headers={"HX-Redirect": LOGIN_PATH, "Cache-Control": "no-store"})


def csrf_refused_response() -> Response:
    body = error_body(
        "permission_denied",
        "missing or wrong CSRF token: reload the page and try again (a dashboard action must come from the dashboard)",
    )
    return JSONResponse(body, status_code=403, headers={"Cache-Control": "no-store"})


def set_session_cookie(request: Request, response: Response, signed_in: SignedIn) -> None:
    response.set_cookie(
        COOKIE,
        signed_in.token,
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=request.url.scheme == "https")
