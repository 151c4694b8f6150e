"""The dashboard's live streams (the Run page's and the Runs list's) end when their session does or
when their user no longer sees the project, within the re-check bound (here 0.3 s, 30 s by
default), against the server embedded as ``hightide server`` runs it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from hightide.cli.embedded import EmbeddedServer
from hightide.engine.environments import bootstrap, find_environment
from hightide.engine.options import TriggerSpec
from hightide.engine.runs import RunEngine
from hightide.engine.signin import SignIn, csrf_token
from hightide.server.dashboard.session import COOKIE
from hightide.store import open_store
from tests.support import embedded_server, eventually, free_port

RUNS = "/projects/default/env/dev/runs"
RECHECK = 0.3
EMAIL = "ada@example.com"


def server(url: str, port: int) -> contextlib.AbstractAsyncContextManager[EmbeddedServer]:
    return embedded_server(url, port, realtime_heartbeat=0.2, dashboard_recheck=RECHECK)


def _setup(url: str) -> tuple[str, str]:
    """A queued run (no worker: it stays QUEUED) and a login token of a member of its project."""
    store = open_store(url)
    try:
        store.migrate()
        bootstrap(store, time.time())
        env = find_environment(store, "dev")
        engine = RunEngine(store)
        engine.triggering.register_version(env, {"tasks": [{"id": "work"}]}, worker_id="w1")
        [(run, _)] = engine.triggering.trigger(env, [TriggerSpec(task_id="work")])
        signin = SignIn(store)
        return run.id, signin.login_link(signin.create_user(EMAIL, projects=["default"]))
    finally:
        store.close()


def _remove_member(url: str) -> None:
    store = open_store(url)
    try:
        signin = SignIn(store)
        signin.remove_member(signin.user(EMAIL).id, find_environment(store, "dev"))
    finally:
        store.close()


async def _async(value: bool) -> bool:
    return value


async def _both_streams_end_when(url: str, cut_off: Callable[[httpx.AsyncClient], Awaitable[None]]) -> None:
    run_id, link = await asyncio.to_thread(_setup, url)
    port = free_port()
    async with (
        server(url, port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as browser,
    ):
        assert (await browser.get(f"/login?token={link}")).status_code == 303
        run_page = browser.stream("GET", f"{RUNS}/{run_id}/live")
        runs_list = browser.stream("GET", RUNS, headers={"Accept": "text/event-stream"})
        async with run_page as run_stream, runs_list as list_stream:
            lines: dict[str, list[str]] = {"run": [], "list": []}

            async def read(name: str, stream: httpx.Response) -> None:
                assert stream.status_code == 200, await stream.aread()
                async for line in stream.aiter_lines():
                    lines[name].append(line)

            readers = [asyncio.create_task(read("run", run_stream)), asyncio.create_task(read("list", list_stream))]
            # Still allowed: both go on across several re-checks (a ping at least every 0.3 s).
            await eventually(
                lambda: _async(all(ls.count(": ping") >= 4 for ls in lines.values())), timeout=10, what="pings"
            )
            assert not any(reader.done() for reader in readers)
            await cut_off(browser)
            # Both end at their next re-check (0.3 s here): within this bound, which leaves room for
            # a loaded machine, and long before they would end by themselves (never).
            await asyncio.wait_for(asyncio.gather(*readers), timeout=10)


async def test_signing_out_ends_the_open_live_streams(tmp_path: Path) -> None:
    async def sign_out(browser: httpx.AsyncClient) -> None:
        token = browser.cookies[COOKIE]
        done = await browser.post("/logout", data={"csrf_token": csrf_token(token)})
        assert done.status_code == 303

    await _both_streams_end_when(str(tmp_path / "server.db"), sign_out)


async def test_leaving_the_project_ends_the_open_live_streams(tmp_path: Path) -> None:
    url = str(tmp_path / "server.db")

    async def remove(browser: httpx.AsyncClient) -> None:
        await asyncio.to_thread(_remove_member, url)

    await _both_streams_end_when(url, remove)
