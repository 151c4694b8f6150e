"""Realtime streams against the server embedded as ``hightide server`` runs it (uvicorn on a
loopback port): heartbeats, authentication before any byte is streamed, a shutdown that does not
wait for open streams, and a subscriber that resumes across a restart of the server."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hightide import AsyncClient, Run, RunStatus
from hightide.cli.embedded import EmbeddedServer
from hightide.engine.environments import bootstrap, create_key, find_environment
from hightide.engine.options import TriggerSpec
from hightide.engine.runs import RunEngine
from hightide.server import ServerSettings
from hightide.store import open_store
from tests.support import embedded_server, eventually, free_port, fresh_postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "server.db")
        return
    with fresh_postgres_database("hightide_rt") as pg:
        yield pg


def server(url: str, port: int, heartbeat: float = 15.0) -> contextlib.AbstractAsyncContextManager[EmbeddedServer]:
    return embedded_server(url, port, realtime_heartbeat=heartbeat)


def _setup(url: str) -> tuple[str, str]:
    """A key for dev and a queued run (no worker: it stays QUEUED until cancelled)."""
    store = open_store(url)
    try:
        store.migrate()
        bootstrap(store, time.time())
        env = find_environment(store, "dev")
        key = create_key(store, env, time.time())
        engine = RunEngine(store)
        engine.triggering.register_version(env, {"tasks": [{"id": "work"}]}, worker_id="w1")
        [(run, _)] = engine.triggering.trigger(env, [TriggerSpec(task_id="work")])
        return key, run.id
    finally:
        store.close()


async def test_an_idle_stream_sends_heartbeats_and_a_shutdown_ends_it_at_once(url: str) -> None:
    key, run_id = await asyncio.to_thread(_setup, url)
    port = free_port()
    async with (
        server(url, port, heartbeat=0.2) as embedded,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http,
    ):
        headers = {"Authorization": f"Bearer {key}"}
        async with http.stream("GET", f"/realtime/v1/runs/{run_id}", headers=headers) as stream:
            assert stream.headers["cache-control"] == "no-cache"
            lines: list[str] = []

            async def read() -> None:
                async for line in stream.aiter_lines():
                    lines.append(line)

            reader = asyncio.create_task(read())
            await eventually(lambda: _async(lines.count(": ping") >= 3), timeout=5, what="3 heartbeats")
            assert any(line.startswith("data: ") and '"QUEUED"' in line for line in lines)
            started = time.monotonic()
            await embedded.stop()  # with the stream open
            assert time.monotonic() - started < 2.0, "the shutdown waited for the open stream"
            await asyncio.wait_for(reader, 2.0)  # and the stream ended


async def _async(value: bool) -> bool:
    return value


async def test_nothing_is_streamed_before_the_caller_is_authenticated(url: str) -> None:
    key, run_id = await asyncio.to_thread(_setup, url)
    port = free_port()
    async with server(url, port), httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        for headers, status in (({}, 401), ({"Authorization": "Bearer ht_dev_nope"}, 401)):
            response = await http.get(f"/realtime/v1/runs/{run_id}", headers=headers)
            assert response.status_code == status
            assert response.headers["content-type"] == "application/json"
            assert response.json()["error"]["code"] == "authentication_error"
        missing = await http.get("/realtime/v1/runs/run_nope", headers={"Authorization": f"Bearer {key}"})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        no_tag = await http.get("/realtime/v1/runs", headers={"Authorization": f"Bearer {key}"})
        assert no_tag.status_code == 422


async def test_a_subscriber_resumes_across_a_restart_and_sees_the_final_state(url: str) -> None:
    key, run_id = await asyncio.to_thread(_setup, url)
    port = free_port()
    seen: list[Run] = []
    async with AsyncClient(api_url=f"http://127.0.0.1:{port}", secret_key=key) as client:

        async def subscribe() -> None:
            async for run in client.runs.subscribe(run_id):
                seen.append(run)

        async with server(url, port):
            subscriber = asyncio.create_task(subscribe())
            await eventually(lambda: _async(bool(seen)), timeout=10, what="the first state")
            assert seen[0].status == RunStatus.QUEUED
        # The server is down: the run is cancelled meanwhile (another server would do it).
        store = open_store(url)
        try:
            engine = RunEngine(store)
            await asyncio.to_thread(engine.control.cancel, find_environment(store, "dev"), run_id)
        finally:
            store.close()
        async with server(url, port):
            await asyncio.wait_for(subscriber, 20)
    assert [r.status for r in seen] == [RunStatus.QUEUED, RunStatus.CANCELED]


async def test_a_finished_run_seen_to_its_end_answers_204(url: str) -> None:
    key, run_id = await asyncio.to_thread(_setup, url)
    port = free_port()
    async with (
        server(url, port) as embedded,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http,
    ):
        headers = {"Authorization": f"Bearer {key}"}
        env = find_environment(embedded.app.state.engine.store, "dev")
        await asyncio.to_thread(embedded.app.state.engine.control.cancel, env, run_id)
        first = await http.get(f"/realtime/v1/runs/{run_id}", headers=headers)
        events = [block for block in first.text.split("\n\n") if block.startswith("id: ")]
        assert len(events) == 1 and '"CANCELED"' in events[0] and "event: end" in first.text
        last_id = events[0].split("\n")[0].removeprefix("id: ")
        again = await http.get(f"/realtime/v1/runs/{run_id}", headers={**headers, "Last-Event-ID": last_id})
        assert again.status_code == 204  # EventSource stops reconnecting
        other = await http.get(f"/realtime/v1/runs/{run_id}", headers={**headers, "Last-Event-ID": "stale"})
        assert other.status_code == 200 and '"CANCELED"' in other.text


def test_every_realtime_operation_authenticates_before_anything_else(tmp_path: Path) -> None:
    from hightide.server import create_app
    from hightide.server.routing import ApiRoute
    from tests.integration.test_api_app import _routes

    app = create_app(ServerSettings(database_url=str(tmp_path / "db.sqlite")))
    realtime = [r for r in _routes(app.routes) if r.path.startswith(("/realtime/", "/api/v1/auth/"))]
    assert {r.path for r in realtime} == {
        "/realtime/v1/runs/{run_id}",
        "/realtime/v1/runs",
        "/api/v1/auth/public-tokens",
    }
    assert all(isinstance(r, ApiRoute) and r.authenticated for r in realtime)
