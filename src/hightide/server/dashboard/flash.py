"""Flash messages: what an action did, shown once on the page it redirects (303) back to.

The message rides in a short-lived cookie scoped to that page's path (HttpOnly, SameSite=Lax), is
read by the next page view and cleared by it: a reload, or a shared link, does not show it again,
and no query string can make a page say something."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Literal

from fastapi import Request, Response

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


__all__ = ["Flash", "clear_flash", "flash", "read_flash"]
