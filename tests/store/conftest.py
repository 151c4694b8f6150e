"""Every store test runs twice: on a fresh SQLite file and on a fresh PostgreSQL database.

Both start from one schema migrated once per session (of each test process): SQLite files are
copies of a migrated file; PostgreSQL databases are cloned (``CREATE DATABASE ... TEMPLATE``) from a
migrated template, and reused: a test returns its database, which the next test gets back emptied
of every row (a few DELETEs cost far less than creating and dropping a database). When no server
answers at ``HIGHTIDE_TEST_DATABASE_URL``, the PostgreSQL variants skip, and tests/conftest.py says so
loudly.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from hightide.store import Store, open_store
from hightide.store.schema import metadata
from tests.support import PG_URL, postgres_available

DIALECTS = ["sqlite", "postgresql"]


class PostgresServer:
    """Creates and drops throwaway databases on the test server over one autocommit connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        # Unique per session, so that concurrent test sessions on one server never collide.
        self.prefix = f"hightide_test_{uuid.uuid4().hex[:10]}"
        self.count = 0
        self.admin = psycopg.connect(url, autocommit=True)
        self.free: list[str] = []  # migrated databases given back by their tests
        self.taken: set[str] = set()

    def url_for(self, name: str) -> str:
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)

    def create(self, template: str | None = None) -> str:
        self.count += 1
        name = f"{self.prefix}_{self.count}"
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        self.admin.execute(query)
        return name

    def drop(self, name: str) -> None:
        # FORCE: a test that failed half-way may leave a connection behind.
        self.admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def take(self, template: str) -> str:
        """A migrated database with no rows: one a test gave back, emptied, or a new clone."""
        if not self.free:
            return self.create(template)
        name = self.free.pop()
        # A test that failed half-way may have left a connection (and its locks) behind.
        self.admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        with psycopg.connect(self.url_for(name), autocommit=True) as conn, conn.transaction():
            for table in reversed(metadata.sorted_tables):  # children before the rows they point to
                conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table.name)))
        return name

    def give_back(self, name: str) -> None:
        self.free.append(name)
        self.taken.discard(name)

    def close(self) -> None:
        for name in [*self.free, *self.taken]:
            self.drop(name)
        self.admin.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    reason = postgres_available(PG_URL)
    if reason is not None:
        shown = make_url(PG_URL).render_as_string(hide_password=True)
        # tests/conftest.py repeats this reason in the terminal summary: keep the prefix.
        pytest.skip(f"PostgreSQL not reachable at {shown}: {reason}")
    server = PostgresServer(PG_URL)
    yield server
    server.close()


@pytest.fixture(scope="session")
def postgres_template(postgres_server: PostgresServer) -> Iterator[str]:
    name = postgres_server.create()
    store = open_store(postgres_server.url_for(name))
    try:
        store.migrate()
    finally:
        store.close()  # a template must have no open connections to be cloned
    yield name
    postgres_server.drop(name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "hightide.db"
    store = open_store(str(path))
    try:
        store.migrate()
    finally:
        store.close()
    return path


def _database(request: pytest.FixtureRequest, tmp_path: Path, *, migrated: bool) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "hightide.db"
        if migrated:
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield str(path)
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    if not migrated:
        name = server.create()
        try:
            yield server.url_for(name)
        finally:
            server.drop(name)
        return
    name = server.take(request.getfixturevalue("postgres_template"))
    server.taken.add(name)
    yield server.url_for(name)
    server.give_back(name)


@pytest.fixture(params=DIALECTS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh, migrated database of each dialect."""
    yield from _database(request, tmp_path, migrated=True)


@pytest.fixture(params=DIALECTS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh database of each dialect with no tables at all."""
    yield from _database(request, tmp_path, migrated=False)


@pytest.fixture
def open_stores() -> Iterator[Callable[[str], Store]]:
    """Open (migrated, started) stores on a URL; all are closed at the end of the test."""
    opened: list[Store] = []

    def open_(url: str) -> Store:
        store = open_store(url)
        opened.append(store)
        store.migrate()
        store.start()
        return store

    yield open_
    for store in reversed(opened):
        store.close()


@pytest.fixture
def store(database_url: str, open_stores: Callable[[str], Store]) -> Store:
    """A started store on a fresh database, on SQLite and on PostgreSQL."""
    return open_stores(database_url)
