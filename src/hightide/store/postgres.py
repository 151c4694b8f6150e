"""``PostgresSeam``: many servers and workers. ``FOR UPDATE SKIP LOCKED`` claims, ``LISTEN/NOTIFY`` wake-ups."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import Connection, Table, create_engine, event, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from hightide.errors import HightideError, ServerError
from hightide.store import changes as wire
from hightide.store.changes import Change
from hightide.store.seam import Seam, TransactionConflict

log = logging.getLogger(__name__)
CHANNEL = "hightide_changes"
LISTEN_WAIT = 5.0  # seconds ``start`` waits for LISTEN to be in place


class PostgresSeam(Seam):
    """A PostgreSQL database shared by many servers: advisory locks and ``SKIP LOCKED`` for claims,
    ``LISTEN/NOTIFY`` for changes (its listening thread runs from ``start`` to ``close``)."""

    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        sa_url = make_url(url).set(drivername="postgresql+psycopg")
        self.url = sa_url
        engine = create_engine(sa_url, pool_size=10, max_overflow=20, pool_pre_ping=True)
        event.listen(engine, "connect", _no_parallel_plans)
        super().__init__(engine)
        self._stop = threading.Event()
        self._listening = threading.Event()  # set once LISTEN is in place
        self._listener: threading.Thread | None = None

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        # READ COMMITTED takes a new snapshot per statement; REPEATABLE READ keeps the first one.
        with self.translated(), self.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    def lock_for_claim(self, conn: Connection, environment_id: str) -> None:
        # One claimer per environment at a time, across servers: limits are counted exactly.
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"claim:{environment_id}"})

    def lock_name(self, conn: Connection, name: str) -> None:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": name})

    def claim_select(self, stmt: Any) -> Any:
        return stmt.with_for_update(skip_locked=True)

    def announce(self, conn: Connection, changes: Sequence[Change]) -> None:
        # One NOTIFY per transaction (more only for a batch too long for one payload), sent at commit.
        for payload in wire.encode(self.origin, changes):
            conn.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": payload})

    def insert(self, table: Table) -> Any:
        return postgresql_insert(table)

    def translate(self, exc: DBAPIError) -> HightideError:
        if getattr(exc.orig, "sqlstate", None) in ("40P01", "40001"):  # deadlock, serialization failure
            return TransactionConflict(f"the transaction raced another one and was rolled back: {exc.orig}")
        if isinstance(exc, OperationalError):
            return ServerError(f"the PostgreSQL database is unreachable: {exc.orig}")
        return super().translate(exc)

    # LISTEN/NOTIFY only makes other servers faster to notice work; polling keeps them correct.
    def start(self) -> None:
        """Start listening; return once LISTEN is in place (so that what other servers commit from
        now on is heard), or after ``LISTEN_WAIT`` seconds if it cannot be yet (it keeps trying)."""
        if self._listener is None:
            self._stop.clear()
            self._listening.clear()
            self._listener = threading.Thread(target=self._listen, name="hightide-pg-listen", daemon=True)
            self._listener.start()
            self._listening.wait(LISTEN_WAIT)

    def close(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.join(timeout=5)
            self._listener = None
        super().close()

    def _listen(self) -> None:
        dsn = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    while not self._stop.is_set():
                        # A short wait: close() joins this thread, and each server stop pays it.
                        for note in conn.notifies(timeout=0.1):
                            self._heard(note.payload)
            except psycopg.Error as exc:
                log.warning("LISTEN connection lost (%s); retrying", exc)
                self._stop.wait(1.0)

    def _heard(self, payload: str) -> None:
        try:
            origin, changes = wire.decode(payload)
        except ValueError as exc:  # e.g. a NOTIFY by hand on the channel: not ours to act on
            log.warning("ignored a notification on %s: %s", CHANNEL, exc)
            return
        if origin != self.origin:  # our own changes reached our listeners at commit already
            self.dispatch(changes)


def _no_parallel_plans(dbapi_conn: Any, _record: Any) -> None:
    """Each new connection plans no parallel queries: every query Hightide runs is a short index
    read (a page, a claim, a due batch), and starting parallel workers cost a filtered Runs page
    ~100 ms before its first row. A session setting, so that it leaves the URL's own ``options``
    alone and a pooler that refuses startup options still connects."""
    autocommit = dbapi_conn.autocommit
    dbapi_conn.autocommit = True
    try:
        with dbapi_conn.cursor() as cur:
            cur.execute("SET max_parallel_workers_per_gather = 0")
    finally:
        dbapi_conn.autocommit = autocommit
