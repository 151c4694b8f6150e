"""How the PostgreSQL store sets up its connections."""

from __future__ import annotations

from sqlalchemy import text

from hightide.store import open_store
from tests.store.conftest import PostgresServer


def test_postgres_connections_plan_no_parallel_queries_and_keep_the_urls_options(
    postgres_server: PostgresServer, postgres_template: str
) -> None:
    name = postgres_server.create(postgres_template)
    store = open_store(postgres_server.url_for(name) + "?options=-c%20statement_timeout%3D12345")
    try:
        with store.seam.engine.connect() as conn:
            assert conn.execute(text("SHOW max_parallel_workers_per_gather")).scalar() == "0"
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "12345ms"
    finally:
        store.close()
        postgres_server.drop(name)
