"""Helpers shared by the test suites."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")

PG_URL = os.environ.get("HIGHTIDE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _give_up(last: AssertionError | None, timeout: float, what: str) -> None:
    if last is not None:
        raise last
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


SLOWEST_POLL = 0.25
"""Checks start ``interval`` apart and back off to this: quick to see what comes soon, and a long
wait does not spend the machine's CPU (which the suite's other processes need) on asking."""


def _pauses(interval: float) -> Iterator[float]:
    pause = interval
    while True:
        yield pause
        pause = max(interval, min(pause * 1.5, SLOWEST_POLL))


def assert_eventually(check: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, what: str = "") -> T:
    """Call ``check`` until it returns a truthy value without raising ``AssertionError``; return it.
    On timeout, re-raise the last assertion (or fail saying what was awaited). Checks are
    ``interval`` apart at first, then further apart (up to ``SLOWEST_POLL``)."""
    deadline = time.monotonic() + timeout
    last: AssertionError | None = None
    pauses = _pauses(interval)
    while True:
        try:
            value = check()
            if value:
                return value
        except AssertionError as exc:
            last = exc
        if time.monotonic() > deadline:
            _give_up(last, timeout, what or str(check))
        time.sleep(next(pauses))


def written_number(path: Path) -> int:
    """The number a task wrote to ``path``, or 0 while the file is missing or still empty (a file is
    created empty, then written): for ``assert_eventually(lambda: written_number(marker))``."""
    text = path.read_text() if path.exists() else ""
    return int(text) if text else 0


async def eventually(
    check: Callable[[], Awaitable[T]], timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> T:
    """``assert_eventually`` for async checks."""
    deadline = time.monotonic() + timeout
    last: AssertionError | None = None
    pauses = _pauses(interval)
    while True:
        try:
            value = await check()
            if value:
                return value
        except AssertionError as exc:
            last = exc
        if time.monotonic() > deadline:
            _give_up(last, timeout, what or str(check))
        await asyncio.sleep(next(pauses))


def postgres_available(url: str = PG_URL) -> str | None:
    """None if PostgreSQL at ``url`` answers, else the reason it does not."""
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=2):
            return None
    except Exception as exc:  # any failure means: skip, and say why
        return f"{type(exc).__name__}: {exc}".splitlines()[0]


@contextmanager
def fresh_postgres_database(prefix: str = "hightide_test") -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards; skips the test (saying why)
    when PostgreSQL is unreachable."""
    import psycopg
    import pytest

    reason = postgres_available()
    if reason:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {reason}")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def probe_client(timeout: float) -> httpx.Client:
    """An ``httpx.Client`` for polling a server until it answers: one for all the polls, on the
    process's one TLS context (each new client would load the CA bundle again)."""
    import httpx

    from hightide.sdk.http import tls_context

    return httpx.Client(timeout=timeout, verify=tls_context())


def wait_for_http(url: str, timeout: float = 60.0) -> None:
    import httpx

    with probe_client(1) as probe:

        def up() -> bool:
            try:
                return probe.get(url).status_code < 500
            except httpx.HTTPError:
                return False

        assert_eventually(up, timeout=timeout, what=f"{url} to answer")


def wait_finished(client: Any, run_id: str, timeout: float = 30.0) -> Any:
    """The run once it is finished (``client`` is a blocking ``hightide.Client``)."""

    def finished() -> Any:
        run = client.runs.retrieve(run_id)
        assert run.is_finished, f"{run.id} is {run.status} on attempt {run.attempt_count}"
        return run

    return assert_eventually(finished, timeout=timeout, interval=0.1, what=f"{run_id} to finish")


@asynccontextmanager
async def embedded_server(url: str, port: int, **settings: Any) -> AsyncIterator[Any]:
    """A real server (``EmbeddedServer``) on ``url``'s database at 127.0.0.1:``port`` in this event
    loop, with these ``ServerSettings``; stopped on exit."""
    from hightide.cli.embedded import EmbeddedServer
    from hightide.server import ServerSettings
    from hightide.store import open_store

    embedded = EmbeddedServer(ServerSettings(database_url=url, **settings), open_store(url), "127.0.0.1", port)
    await embedded.start()
    try:
        yield embedded
    finally:
        await embedded.stop()


def login_link(database_url: str, base_url: str, email: str = "admin@localhost") -> str:
    """A new one-time login link for ``email``, made on the server's database by the code
    ``hightide users login-link`` runs (in this process: that command is tested on its own, and
    starting it for each sign-in cost a second of CPU)."""
    from hightide.engine.signin import SignIn, login_url
    from hightide.store import open_store

    store = open_store(database_url)
    try:
        signin = SignIn(store)
        return login_url(base_url, signin.login_link(signin.user(email)))
    finally:
        store.close()
