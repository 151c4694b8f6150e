"""Alembic environment: runs against the engine handed in by ``hightide.store.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from hightide.store.schema import metadata

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Servers starting together on one database migrate it one at a time: the others wait
            # here, then find it up to date (DDL is transactional on PostgreSQL).
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('hightide:migrate'))"))
        context.run_migrations()
    connection.commit()
