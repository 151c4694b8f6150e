"""The route class of every dashboard page, fragment and action.

Before a handler runs, a state-changing request (anything but GET, HEAD, OPTIONS) must have a session
and carry its CSRF token: forgetting the check on a new action is not possible. A page's errors are
pages (the one error shape stays the API's); every answer gets the dashboard's security headers."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from hightide.errors import HightideError
from hightide.server.dashboard.render import render
from hightide.server.dashboard.session import (
    CsrfRefused,
    SignInRequired,
    check_csrf,
    csrf_refused_response,
    find_session,
    sign_in_required_response,
)
from hightide.server.errors import HTTP_STATUS

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Only this site's own files run, nothing may frame the dashboard, and forms post only here.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class DashboardRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            try:
                if request.method not in SAFE_METHODS:
                    await check_csrf(request)
                response = await handler(request)
            except SignInRequired as exc:
                response = sign_in_required_response(request, exc)
            except CsrfRefused:
                response = csrf_refused_response()
            except HightideError as exc:
                if exc.code == "server_error":
                    raise  # CatchAll logs it with a reference
                response = await error_page(request, exc)
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            response.headers.setdefault("Cache-Control", "no-store")  # pages hold an environment's data
            return response

        return route_handler


async def error_page(request: Request, exc: HightideError) -> Response:
    signed_in = await find_session(request)
    status = HTTP_STATUS.get(exc.code, 400)
    return render(request, "error.html", status, signed_in=signed_in, status=status, message=exc.message, nav=None)
