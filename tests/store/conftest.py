"""Every store test runs twice: on a fresh SQLite file and on a fresh PostgreSQL database.

PostgreSQL databases are cloned (``CREATE DATABASE ... TEMPLATE``) from one template migrated
once per session, which is much faster than migrating each database. When no server answers at
``HIGHTIDE_TEST_DATABASE_URL``, the PostgreSQL variants skip, and tests/conftest.py says so loudly.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from hightide.store import Store, open_store
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

    def close(self) -> None:
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


def _database(request: pytest.FixtureRequest, tmp_path: Path, *, migrated: bool) -> Iterator[str]:
    if request.param == "sqlite":
        # The SQLite store migrates itself in the `store` fixture: a fresh file costs nothing.
        yield str(tmp_path / "hightide.db")
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    template = request.getfixturevalue("postgres_template") if migrated else None
    name = server.create(template)
    try:
        yield server.url_for(name)
    finally:
        server.drop(name)


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
