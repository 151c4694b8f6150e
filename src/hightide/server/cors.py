"""CORS for the routes a browser may call with a public access token, and for those only: the
realtime streams (``/realtime/v1/...``) and ``GET /api/v1/runs/{id}``.

Their responses (errors included) carry ``Access-Control-Allow-Origin: *``, and a preflight
(``OPTIONS`` with ``Access-Control-Request-Method``) is answered here with 204. Credentials are
never cookies: a browser sends the token itself, in ``Authorization`` (or ``?access_token=`` on a
stream), so ``*`` is safe. Every other route answers as it did, without CORS headers: a page on
another origin cannot call them.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PUBLIC_PATHS = re.compile(r"^(/realtime/v1/.*|/api/v1/runs/[^/]+)$")
_ALLOW = [(b"access-control-allow-origin", b"*")]
_PREFLIGHT = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, OPTIONS"),
    (b"access-control-allow-headers", b"authorization, last-event-id, cache-control, accept"),
    (b"access-control-max-age", b"600"),
    (b"vary", b"access-control-request-headers"),
    (b"content-length", b"0"),
]


def is_public_path(path: str) -> bool:
    return PUBLIC_PATHS.match(path) is not None


class PublicCors:
    """Pure ASGI, outermost: preflights of public paths are answered before anything else runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_public_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
            await send({"type": "http.response.start", "status": 204, "headers": _PREFLIGHT})
            await send({"type": "http.response.body", "body": b""})
            return

        async def allowing_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *_ALLOW]}
            await send(message)

        await self.app(scope, receive, allowing_send)
