"""Schema migrations with Alembic, driven from code (no alembic.ini to ship or find).

A database already at ``HEAD`` is told by one query, without loading Alembic: every command and
server start checks it, and loading Alembic and its scripts costs more than the rest of a short
command."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD = "0016"
"""The newest revision under ``migrations/versions`` (a test holds them equal)."""


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    if revision == "head" and at_head(engine):
        return
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def at_head(engine: Engine) -> bool:
    """Whether the database behind ``engine`` is at ``HEAD`` (False for a new, empty one)."""
    try:
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except DBAPIError:  # no alembic_version table yet
        return False
    return list(versions) == [HEAD]


def pending(engine: Engine) -> list[str]:
    """Revisions not yet applied to the database behind ``engine``."""
    if at_head(engine):
        return []
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(engine))
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_heads()
    head = script.get_current_head()
    if head in current:
        return []
    return [rev.revision for rev in script.iterate_revisions(head, current[0] if current else None)]
