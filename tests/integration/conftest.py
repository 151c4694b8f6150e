"""A real server (``hightide server``) on a loopback port and a real worker (``hightide worker``),
on SQLite and, where reachable, on a fresh PostgreSQL database."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hightide import Client
from hightide.engine.environments import create_key, find_environment
from hightide.sdk.http import tls_context
from hightide.store import open_store
from tests.support import assert_eventually, free_port, fresh_postgres_database, wait_for_http

PROJECT = Path(__file__).parent / "project"
CLI = [sys.executable, "-c", "from hightide.cli.main import main; main()"]


@dataclass
class Stack:
    url: str
    key: str
    database_url: str
    log: Path

    def http(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key or self.key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, verify=tls_context())

    _client: Client | None = None
    _keys: dict[str, str] | None = None

    def key_for(self, env: str) -> str:
        """A key of another environment of the stack's project (one per environment, made once)."""
        self._keys = self._keys or {}
        if env not in self._keys:
            self._keys[env] = self.new_key(env)
        return self._keys[env]

    def hand_driven(self) -> httpx.Client:
        """A client of the staging environment, where no worker runs: for tests that drive the
        worker protocol by hand (registering their own versions leaves dev's tasks current)."""
        return self.http(self.key_for("staging"))

    def client(self) -> Client:
        return Client(api_url=self.url, secret_key=self.key)

    def shared_client(self) -> Client:
        if self._client is None:
            self._client = self.client()
        return self._client

    def close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def new_key(self, env: str = "dev") -> str:
        """A new secret key, made on the stack's database by the code ``hightide keys create`` runs
        (in this process: the command has tests of its own)."""
        store = open_store(self.database_url)
        try:
            return create_key(store, find_environment(store, env), time.time())
        finally:
            store.close()


def _start(args: list[str], log: Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            args,
            cwd=cwd,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def fresh_database(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a new, empty database: a SQLite file, or a PostgreSQL database dropped after
    (skipping the test, saying why, when PostgreSQL is unreachable)."""
    if backend == "sqlite":
        yield str(tmp_path_factory.mktemp("db") / "server.db")
        return
    with fresh_postgres_database("hightide_it") as url:
        yield url


@contextmanager
def running_stack(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A server with a 1 s lease and a 64 KiB payload limit, and a worker with 3 slots whose runs
    suspend on waits longer than 1 s, on a fresh database of ``backend``."""
    with fresh_database(backend, tmp_path_factory) as database_url:
        work = tmp_path_factory.mktemp("stack")
        project = work / "project"
        shutil.copytree(PROJECT, project)
        log = work / "log.txt"
        port = free_port()
        server = _start(
            [
                *CLI,
                "server",
                "--database-url",
                database_url,
                "--port",
                str(port),
                "--lease-seconds",
                "1",
                "--max-payload-bytes",
                str(64 * 1024),
            ],
            log,
            work,
        )
        url = f"http://127.0.0.1:{port}"
        stack = Stack(url, "", database_url, log)
        worker = None
        try:
            try:
                wait_for_http(f"{url}/healthz")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; the server's log:\n{log.read_text()[-4000:]}") from None
            stack.key = stack.new_key()
            worker = _start(
                [*CLI, "worker", "--concurrency", "3"],
                log,
                project,
                {"HIGHTIDE_API_URL": url, "HIGHTIDE_SECRET_KEY": stack.key, "HIGHTIDE_CHECKPOINT_THRESHOLD": "1"},
            )
            assert_eventually(lambda: "registered" in log.read_text(), timeout=30, what="the worker to register")
            yield stack
        finally:
            stack.close_client()
            for proc in (worker, server):
                if proc is not None:
                    _stop(proc)


class Stacks:
    """One running stack per backend for the whole session (of each test process), started when a
    test first asks for it: tests of every file share it, whatever order they run in."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._factory = tmp_path_factory
        self._open: dict[str, Stack] = {}
        self._exits = ExitStack()

    def get(self, backend: str) -> Stack:
        if backend not in self._open:
            self._open[backend] = self._exits.enter_context(running_stack(backend, self._factory))
        return self._open[backend]

    def close(self) -> None:
        self._exits.close()


@pytest.fixture(scope="session")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stacks]:
    opened = Stacks(tmp_path_factory)
    yield opened
    opened.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def stack(request: pytest.FixtureRequest, stacks: Stacks) -> Stack:
    """The session's running stack on SQLite, and on PostgreSQL where it is reachable."""
    return stacks.get(request.param)


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    with stack.http() as client:
        yield client


@pytest.fixture
def client(stack: Stack) -> Client:
    """The stack's blocking client (one per stack, kept for the session)."""
    return stack.shared_client()


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    """On failure, show the server's and worker's output: it usually says why."""
    if call.when == "call" and call.excinfo is not None:
        stack = item.funcargs.get("stack") if hasattr(item, "funcargs") else None
        if isinstance(stack, Stack) and stack.log.exists():
            item.add_report_section("call", "server+worker log", stack.log.read_text()[-6000:])
