"""``SQLiteSeam``: the embedded default. WAL mode; writes serialised in-process and by ``BEGIN IMMEDIATE``."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, create_engine, event, func
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, OperationalError

from hightide.errors import HightideError, ServerError
from hightide.store.seam import Seam


class SQLiteSeam(Seam):
    """A SQLite file: WAL mode, a write lock in this process and ``BEGIN IMMEDIATE``."""

    dialect = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            f"sqlite:///{self.path}",
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=8,
            max_overflow=16,
        )
        event.listen(engine, "connect", _on_connect)
        event.listen(engine, "begin", _on_begin)
        super().__init__(engine)
        # One writer at a time inside this process: SQLite's own busy handler sleeps in coarse
        # steps, which would add milliseconds of latency under contention.
        self._write_lock = threading.Lock()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with self._write_lock, self.translated(), self.engine.connect() as conn:
            conn.execution_options(hightide_write=True)
            with conn.begin():
                yield conn

    def contains(self, column: Any, text: str) -> Any:
        return func.instr(column, text) > 0

    def insert(self, table: Table) -> Any:
        return sqlite_insert(table)

    def translate(self, exc: DBAPIError) -> HightideError:
        if isinstance(exc, OperationalError) and "locked" in str(exc.orig):
            return ServerError(f"the SQLite database {self.path} is locked by another process; try again")
        return super().translate(exc)


def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself, so that writes can BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _on_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get("hightide_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
