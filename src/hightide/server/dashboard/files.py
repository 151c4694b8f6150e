"""The dashboard's static files, with cache headers: a versioned URL (``?v=<hash>``, see
``render.static_url``) is cached for a year; any other is revalidated (ETag) on each use."""

from __future__ import annotations

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope


class CachedStatic(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code in (200, 304):
            versioned = b"v=" in scope.get("query_string", b"")
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable" if versioned else "no-cache"
            response.headers["X-Content-Type-Options"] = "nosniff"
        return response
