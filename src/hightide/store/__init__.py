"""The only place with SQL. ``open_store(url)`` picks the backend from a URL or a file path."""

from __future__ import annotations

from hightide.errors import ConfigError
from hightide.store.base import Store


def open_store(url: str) -> Store:
    """``sqlite:///path``, a plain file path, or ``postgresql://...``."""
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        from hightide.store.postgres import PostgresSeam

        return Store(PostgresSeam(url.replace("postgres://", "postgresql://", 1)))
    if url.startswith("sqlite:///"):
        url = url[len("sqlite:///") :]
    elif "://" in url:
        raise ConfigError(f"unsupported database URL {url!r}: use a file path, sqlite:///PATH or postgresql://...")
    from hightide.store.sqlite import SQLiteSeam

    return Store(SQLiteSeam(url))


__all__ = ["Store", "open_store"]
