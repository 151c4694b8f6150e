"""The server's composition root: store + engine + services + HTTP routes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from hightide.config import DEFAULT_MAX_PAYLOAD_BYTES
from hightide.engine import RunEngine
from hightide.engine.environments import KeyAuthenticator, bootstrap
from hightide.engine.runs import EngineSettings
from hightide.engine.scheduler import Scheduler
from hightide.server import docs, errors, routes_runs, routes_waitpoints, routes_worker
from hightide.server.errors import error_body
from hightide.store import Store, open_store


@dataclass(frozen=True)
class ServerSettings:
    database_url: str
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    lease_seconds: float = 30.0
    environment_concurrency: int | None = None  # None: keep each environment's limit (default 100)
    migrate: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def max_body_bytes(self) -> int:
        # A batch carries up to 1,000 payloads; each is checked against max_payload_bytes.
        return max(64 * 1024 * 1024, 4 * self.max_payload_bytes)


class BodyLimit:
    """Reject bodies over ``limit`` bytes (by Content-Length) before they are read. Pure ASGI: it
    sits on every request, so it stays cheap."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                    body = error_body(
                        "payload_too_large",
                        f"request body of {int(value):,} bytes is over the limit of {self.limit:,}",
                    )
                    await JSONResponse(body, status_code=413)(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def create_app(settings: ServerSettings, store: Store | None = None) -> FastAPI:
    """Build the app. The store is opened (and migrated) here unless one is passed in."""
    store = store or open_store(settings.database_url)
    engine = RunEngine(
        store, EngineSettings(max_payload_bytes=settings.max_payload_bytes, lease_seconds=settings.lease_seconds)
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.migrate:
            store.migrate()
        bootstrap(store, time.time(), settings.environment_concurrency)
        engine.attach(asyncio.get_running_loop())
        store.start()
        scheduler = Scheduler(engine)
        task = asyncio.create_task(scheduler.run(), name="hightide-scheduler")
        try:
            yield
        finally:
            scheduler.stop()
            await task
            engine.detach()
            store.close()

    app = FastAPI(
        title="Hightide",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # docs.install serves it, with its assets
        openapi_url=docs.OPENAPI_URL,
        redoc_url=None,
    )
    app.state.engine = engine
    app.state.authenticator = KeyAuthenticator(store)
    app.state.versions = {}
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(errors.CatchAll)  # outermost: answers whatever escapes the rest
    errors.install(app)
    docs.install(app)
    app.include_router(routes_runs.router)
    app.include_router(routes_worker.router)
    app.include_router(routes_waitpoints.router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    async def index() -> str:
        return (
            "<!doctype html><title>Hightide</title><h1>Hightide</h1>"
            '<p>The API is at <a href="/api/docs">/api/docs</a>.</p>'
        )

    return app
