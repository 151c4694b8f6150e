"""Migrations from zero must build exactly the declared schema, on each dialect."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from hightide.store import open_store
from hightide.store.migrate import HEAD, alembic_config, at_head, pending
from hightide.store.schema import metadata


def test_migrations_from_zero_equal_the_declared_schema(empty_database_url: str) -> None:
    store = open_store(empty_database_url)
    try:
        head = ScriptDirectory.from_config(alembic_config(store.engine)).get_current_head()
        assert head == HEAD, "a new migration must be named in hightide.store.migrate.HEAD"
        assert head in pending(store.engine) and not at_head(store.engine)

        store.migrate()

        assert pending(store.engine) == [] and at_head(store.engine)
        with store.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == [], f"migrations and hightide.store.schema disagree: {diff}"

        store.migrate()  # again: nothing to do, and no error
        assert pending(store.engine) == []
    finally:
        store.close()
