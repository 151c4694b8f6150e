"""The app's own guarantees, checked on the app that ``hightide server`` runs (in process here, to
reach its routes and to give it a route that fails)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from hightide.server import ServerSettings, create_app
from hightide.server.routing import ApiRoute


def _routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if hasattr(route, "original_router"):  # newer FastAPI versions keep included routers whole
            yield from _routes(route.original_router.routes)
        elif isinstance(route, APIRoute):
            yield route


def test_every_api_operation_authenticates_before_it_reads_a_body(tmp_path: Path) -> None:
    app = create_app(ServerSettings(database_url=str(tmp_path / "db.sqlite")))
    api = [r for r in _routes(app.routes) if r.path.startswith("/api/v1")]
    assert len(api) > 10
    assert all(isinstance(r, ApiRoute) for r in api), [r.path for r in api if not isinstance(r, ApiRoute)]
    # The one exception: a token's callback URL carries its signature instead of a key (checked first).
    assert {r.path for r in api if not r.authenticated} == {"/api/v1/waitpoints/tokens/{token_id}/callback/{signature}"}


async def test_an_unexpected_error_is_a_500_with_a_reference_to_its_logged_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(ServerSettings(database_url=str(tmp_path / "db.sqlite")))

    @app.get("/api/v1/boom")
    async def boom() -> None:
        raise KeyError("an internal detail")

    transport = httpx.ASGITransport(app=app)  # the route needs no store, so no lifespan either
    with caplog.at_level(logging.ERROR, logger="hightide.server"):
        async with httpx.AsyncClient(transport=transport, base_url="http://hightide") as client:
            response = await client.get("/api/v1/boom")
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "server_error"
    assert "internal detail" not in error["message"] and "KeyError" not in error["message"]
    ref = re.search(r"ref ([0-9a-f]{8})", error["message"])
    assert ref, error["message"]
    [record] = [r for r in caplog.records if ref.group(1) in r.getMessage()]
    assert record.exc_info is not None and record.exc_info[0] is KeyError
    assert "GET /api/v1/boom" in record.getMessage()
