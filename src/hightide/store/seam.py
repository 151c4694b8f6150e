"""The storage seam: the engine, transactions, change notifications and the dialect hooks.

One ``Seam`` per store, shared by every group of named operations (``environments.py``,
``runs.py``, ``claims.py``, ``releases.py``, ``waitpoints.py``, ``telemetry.py``), each of which is
constructed with it; ``Store`` (in ``base.py``) is the facade that holds them. The dialect seams
(``SQLiteSeam`` in ``sqlite.py``, ``PostgresSeam`` in ``postgres.py``) override only the hooks here:
how a write transaction begins, how claiming locks, how changes travel to other servers and how
driver errors map to Hightide errors.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, Table
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from hightide.errors import AlreadyExistsError, HightideError, ServerError, ValidationError
from hightide.store.changes import Change, batch

P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger("hightide.store")

Listener = Callable[[Sequence[Change]], None]
"""Called, from any thread, with the changes of one committed transaction (of this store, or with
PostgreSQL of any server on the database). It must return quickly: hand the work to a loop."""
_PENDING = "hightide_changes"  # where a write transaction's connection collects its changes


class TransactionConflict(ServerError):
    """The database aborted a transaction that raced another one (a PostgreSQL deadlock or
    serialization failure): running it again is safe."""


def retried(fn: Callable[P, T]) -> Callable[P, T]:
    """Run a write operation again (up to 5 times, with jitter) when its transaction lost a race.
    For operations that lock rows of several runs and waitpoints in one transaction."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        for attempt in range(5):
            try:
                return fn(*args, **kwargs)
            except TransactionConflict:
                if attempt == 4:
                    raise
                time.sleep(random.uniform(0.002, 0.02) * (attempt + 1))
        raise AssertionError("unreachable")

    return wrapper


def _refused(exc: BaseException) -> ValidationError:
    """A value the database refused (too long, out of range, NUL). The API's limits
    (``core/limits.py``) refuse these first; this keeps any that slip through a 4xx, not a 500."""
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ValidationError(f"the database cannot store a value of this request: {reason}", details={"reason": reason})


class Seam:
    """The database of one store: its engine, transactions, change publication and listeners, and
    the dialect hooks (overridden by ``SQLiteSeam`` and ``PostgresSeam``)."""

    dialect = "base"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._listeners: list[Listener] = []
        self._listeners_lock = threading.Lock()
        self.origin = uuid.uuid4().hex[:12]
        """Names this store in its notifications, so that it can skip its own."""

    # -- lifecycle -------------------------------------------------------------------------
    def migrate(self) -> None:
        """Bring the schema up to date (Alembic migrations)."""
        from hightide.store.migrate import upgrade

        upgrade(self.engine)

    def start(self) -> None:
        """Start background machinery (notification listeners)."""

    def close(self) -> None:
        self.engine.dispose()

    # -- dialect hooks ---------------------------------------------------------------------
    @contextmanager
    def translated(self) -> Iterator[None]:
        """Driver errors inside become Hightide errors."""
        try:
            yield
        except DBAPIError as exc:
            raise self.translate(exc) from exc
        except OverflowError as exc:  # SQLite's driver: an integer beyond 64 bits
            raise _refused(exc) from exc

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction, committed on exit; driver errors become Hightide errors."""
        with self.translated(), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.translated(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read whose statements all see one state of the database (a run and its waits as they
        were together, not a run read before a commit and its waits after)."""
        with self.read() as conn:
            yield conn

    def translate(self, exc: DBAPIError) -> HightideError:
        if isinstance(exc, IntegrityError):
            # The driver's text (constraint names, key values) is for the log, not for the client.
            log.warning("a write conflicted with a record written at the same time: %s", exc.orig)
            return AlreadyExistsError(
                "the request conflicts with a record written at the same time (the same id or key); retry it"
            )
        if isinstance(exc, DataError):  # a value the column cannot hold: the request's fault
            return _refused(exc.orig or exc)
        return ServerError(f"database error: {exc.orig}")

    def lock_for_claim(self, conn: Connection, environment_id: str) -> None:
        """Serialise claims of one environment so that concurrency limits hold exactly."""

    def lock_name(self, conn: Connection, name: str) -> None:
        """Serialise the write transactions that take the lock ``name`` (until they end), across
        servers. SQLite's writes are serial already."""

    def claim_select(self, stmt: Any) -> Any:
        return stmt

    def contains(self, column: Any, text: str) -> Any:
        """A case-sensitive substring test (SQLite's LIKE ignores case)."""
        return column.contains(text, autoescape=True)

    def upsert(
        self, conn: Connection, table: Table, values: dict[str, Any], keys: Sequence[str], update: Sequence[str]
    ) -> None:
        """Insert ``values``, or where a row with the same ``keys`` exists, set its ``update`` columns
        to theirs (one ``INSERT ... ON CONFLICT DO UPDATE``: two writers racing both succeed)."""
        stmt = self.insert(table).values(**values)
        conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in update}))

    def insert_missing(self, conn: Connection, table: Table, values: dict[str, Any], keys: Sequence[str]) -> None:
        """Insert ``values`` unless a row with the same ``keys`` exists (``INSERT ... ON CONFLICT DO
        NOTHING``: of writers racing to create one row, one creates it and none fails)."""
        conn.execute(self.insert(table).values(**values).on_conflict_do_nothing(index_elements=list(keys)))

    def insert(self, table: Table) -> Any:
        """The dialect's ``INSERT`` construct (the one with ``on_conflict_do_update``)."""
        raise NotImplementedError

    def publish(self, conn: Connection, *changes: Change) -> None:
        """Record, inside a write transaction of ``write_notify``, what it changes: published
        once it committed (nothing, if it rolls back)."""
        conn.info[_PENDING].extend(changes)

    def announce(self, conn: Connection, changes: Sequence[Change]) -> None:
        """Tell other servers on the database, inside the transaction (delivered at its commit)."""

    # -- notifications ---------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        with self._listeners_lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._listeners_lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def dispatch(self, changes: Sequence[Change]) -> None:
        if not changes:
            return
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(changes)

    @contextmanager
    def write_notify(self) -> Iterator[Connection]:
        """A write transaction whose ``publish``-ed changes reach the listeners after commit: of
        this process directly, of other servers through ``announce``, as one batch."""
        with self.write() as conn:
            pending: list[Change] = conn.info.setdefault(_PENDING, [])
            pending.clear()  # a pooled connection may hold those of a transaction that rolled back
            yield conn
            changes = batch(pending)
            pending.clear()
            if changes:
                self.announce(conn, changes)
        self.dispatch(changes)
