"""Flash messages: what an action did, shown once on the page it redirects (303) back to.

The message rides in a short-lived cookie scoped to that page's path (HttpOnly, SameSite=Lax), is
read by the next page view and cleared by it: a reload, or a shared link, does not show it again,
and no query string can make a page say something."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from hightide.errors import HightideError

COOKIE = "hightide_flash"
MAX_TEXT = 1500  # characters: a cookie holds about 4 KB


@dataclass(frozen=True)
class Flash:
    kind: Literal["ok", "error"]
    text: str


def flash(request: Request, response: Response, path: str, message: Flash) -> None:
    """Show ``message`` on the next view of ``path`` (a page's path, no query)."""
    text = message.text if len(message.text) <= MAX_TEXT else message.text[: MAX_TEXT - 1] + "…"
    value = base64.urlsafe_b64encode(json.dumps([message.kind, text]).encode()).decode()
    secure = request.url.scheme == "https"
    response.set_cookie(COOKIE, value, max_age=60, path=path, httponly=True, samesite="lax", secure=secure)


def read_flash(request: Request) -> Flash | None:
    """The message waiting for this page view, if any (then ``clear_flash`` its response)."""
    value = request.cookies.get(COOKIE)
    if not value:
        return None
    try:
        kind, text = json.loads(base64.urlsafe_b64decode(value.encode()))
    except (ValueError, TypeError):
        return None
    if kind not in ("ok", "error") or not isinstance(text, str):
        return None
    return Flash(kind, text[:MAX_TEXT])


def clear_flash(request: Request, response: Response, path: str) -> None:
    if COOKIE in request.cookies:
        secure = request.url.scheme == "https"
        response.delete_cookie(COOKIE, path=path, httponly=True, samesite="lax", secure=secure)


def back_to(request: Request, page: str, message: Flash) -> Response:
    """303 back to ``page``, which then shows ``message`` once."""
    response = RedirectResponse(page, status_code=303)
    flash(request, response, page, message)
    return response


async def acted(
    request: Request,
    page: str,
    act: Callable[[], Flash],
    failed: Callable[[HightideError], str],
    told: tuple[type[Exception], ...] = (),
) -> Response:
    """Do ``act`` (in a thread) and go back to ``page`` with what it says; what the engine refuses
    is an error message there (``failed`` words it), as is an exception of ``told`` (its text)."""
    try:
        message = await run_in_threadpool(act)
    except told as exc:
        message = Flash("error", str(exc))
    except HightideError as exc:
        if exc.code == "server_error":
            raise
        message = Flash("error", failed(exc))
    return back_to(request, page, message)


__all__ = ["Flash", "acted", "back_to", "clear_flash", "flash", "read_flash"]
