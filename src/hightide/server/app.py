"""The server's composition root: store + engine + services + HTTP routes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

from hightide.config import DEFAULT_MAX_PAYLOAD_BYTES
from hightide.engine.base import DEFAULT_RETENTION
from hightide.engine.environments import KeyAuthenticator, bootstrap
from hightide.engine.runs import EngineSettings, RunEngine
from hightide.engine.scheduler import Scheduler
from hightide.engine.signin import SignIn
from hightide.server import (
    dashboard,
    docs,
    errors,
    routes_alerts,
    routes_metadata,
    routes_queues,
    routes_realtime,
    routes_runs,
    routes_schedules,
    routes_waitpoints,
    routes_worker,
)
from hightide.server.alert_delivery import AlertDeliverer
from hightide.server.cors import PublicCors
from hightide.server.limits import BodyLimit
from hightide.store import Store, open_store


@dataclass(frozen=True)
class ServerSettings:
    database_url: str
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    lease_seconds: float = 30.0
    environment_concurrency: int | None = None  # None: keep each environment's limit (default 100)
    migrate: bool = True
    realtime_heartbeat: float = 15.0  # seconds between the keep-alive comments of an idle realtime stream
    public_url: str | None = None  # where users reach the server (links it makes); None: the request's host
    dashboard_recheck: float = 30.0  # seconds a live dashboard stream goes on before it checks its session again
    retention: float | None = DEFAULT_RETENTION  # seconds finished runs are kept; None: for ever
    purge_every: float = 60.0  # seconds between two retention passes
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def max_body_bytes(self) -> int:
        # A batch carries up to 1,000 payloads; each is checked against max_payload_bytes. This bounds
        # the bytes held of a body; what it costs parsed is bounded by limits.MAX_JSON_VALUES.
        return max(64 * 1024 * 1024, 4 * self.max_payload_bytes)


def create_app(settings: ServerSettings, store: Store | None = None) -> FastAPI:
    """Build the app. The store is opened (and migrated) here unless one is passed in."""
    store = store or open_store(settings.database_url)
    engine = RunEngine(
        store,
        EngineSettings(
            max_payload_bytes=settings.max_payload_bytes,
            lease_seconds=settings.lease_seconds,
            retention=settings.retention,
        ),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.migrate:
            store.migrate()
        bootstrap(store, time.time(), settings.environment_concurrency)
        engine.attach(asyncio.get_running_loop())
        store.start()
        # What start-up made (modules, routes, the app) lives as long as the server: out of the
        # collector's sight, full collections during bursts of requests only walk what requests make.
        gc.freeze()
        scheduler = Scheduler(engine, purge_every=settings.purge_every)
        deliverer = AlertDeliverer(engine, settings.public_url)
        tasks = [
            asyncio.create_task(scheduler.run(), name="hightide-scheduler"),
            asyncio.create_task(deliverer.run(), name="hightide-alerts"),
        ]
        try:
            yield
        finally:
            scheduler.stop()
            deliverer.stop()
            await asyncio.gather(*tasks)
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
    app.state.public_url = settings.public_url
    app.state.authenticator = KeyAuthenticator(store)
    app.state.versions = {}
    app.state.dashboard_recheck = settings.dashboard_recheck
    # The last added is the outermost: CatchAll answers whatever escapes the rest, BodyLimit streams
    # every body under the cap. Authentication comes before any body is read (routing.ApiRoute).
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(errors.CatchAll)
    app.add_middleware(PublicCors)  # CORS for the realtime routes and run retrieval only
    errors.install(app)
    docs.install(app)
    app.include_router(routes_runs.router)
    app.include_router(routes_worker.router)
    app.include_router(routes_waitpoints.router)
    app.include_router(routes_metadata.router)
    app.include_router(routes_queues.router)
    app.include_router(routes_schedules.router)
    app.include_router(routes_alerts.router)
    routes_realtime.install(app, settings.realtime_heartbeat)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    dashboard.install(app, SignIn(store))  # `/`, `/login`, the pages and their static files

    return app
