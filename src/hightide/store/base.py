"""The one storage seam: named operations over SQLAlchemy Core, written once for both dialects.

Subclasses (``sqlite.py``, ``postgres.py``) override only what really differs: how a write
transaction starts, how claiming locks, how wake-ups travel between processes, and how driver
errors map to Hightide errors.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from hightide.core.ids import new_id
from hightide.core.states import RunStatus
from hightide.errors import AlreadyExistsError, HightideError, ServerError, ValidationError
from hightide.store import schema as t
from hightide.store.records import (
    Attempt,
    Environment,
    LogEntry,
    NewRun,
    Run,
    RunFilter,
    TaskDefinition,
    Version,
    dumps,
    loads,
)

Listener = Callable[[str], None]
"""Called with an environment id when that environment may have new work or cancellations."""


class Store:
    """Named storage operations. Every method is one transaction unless it says otherwise."""

    dialect = "base"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._listeners: list[Listener] = []
        self._listeners_lock = threading.Lock()

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
    def _write(self) -> Iterator[Connection]:
        """A write transaction, committed on exit; driver errors become Hightide errors."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except DBAPIError as exc:
            raise self._translate(exc) from exc

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except DBAPIError as exc:
            raise self._translate(exc) from exc

    def _translate(self, exc: DBAPIError) -> HightideError:
        if isinstance(exc, IntegrityError):
            return AlreadyExistsError(f"a conflicting record exists: {exc.orig}")
        return ServerError(f"database error: {exc.orig}")

    def _lock_for_claim(self, conn: Connection, environment_id: str) -> None:
        """Serialise claims of one environment so that concurrency limits hold exactly."""

    def _claim_select(self, stmt: Any) -> Any:
        return stmt

    def _publish(self, conn: Connection, environment_id: str) -> None:
        """Announce, inside a write transaction, that ``environment_id`` changed."""
        self._pending_notify(conn).add(environment_id)

    # -- notifications ---------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        with self._listeners_lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._listeners_lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _dispatch(self, environment_id: str) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(environment_id)

    def _pending_notify(self, conn: Connection) -> set[str]:
        pending = conn.info.setdefault("hightide_notify", set())
        return pending

    @contextmanager
    def _write_notify(self) -> Iterator[Connection]:
        """A write transaction whose ``_publish`` calls reach in-process listeners after commit."""
        with self._write() as conn:
            yield conn
            pending = set(self._pending_notify(conn))
            self._pending_notify(conn).clear()
        for env_id in pending:
            self._dispatch(env_id)

    # -- projects, environments, keys ------------------------------------------------------
    def ensure_project(self, slug: str, now: float) -> str:
        with self._write() as conn:
            row = conn.execute(select(t.projects.c.id).where(t.projects.c.slug == slug)).first()
            if row:
                return str(row.id)
            project_id = new_id("proj", now)
            conn.execute(insert(t.projects).values(id=project_id, slug=slug, name=slug, created_at=now))
            return project_id

    def ensure_environment(self, project_id: str, slug: str, kind: str, concurrency_limit: int, now: float) -> str:
        with self._write() as conn:
            row = conn.execute(
                select(t.environments.c.id).where(
                    t.environments.c.project_id == project_id, t.environments.c.slug == slug
                )
            ).first()
            if row:
                return str(row.id)
            env_id = new_id("env", now)
            conn.execute(
                insert(t.environments).values(
                    id=env_id,
                    project_id=project_id,
                    slug=slug,
                    kind=kind,
                    concurrency_limit=concurrency_limit,
                    created_at=now,
                )
            )
            return env_id

    def set_environment_concurrency(self, environment_id: str, limit: int) -> None:
        with self._write_notify() as conn:
            conn.execute(
                update(t.environments).where(t.environments.c.id == environment_id).values(concurrency_limit=limit)
            )
            self._publish(conn, environment_id)

    def _env_select(self) -> Any:
        e, p = t.environments, t.projects
        return select(
            e.c.id, e.c.project_id, p.c.slug.label("project_slug"), e.c.slug, e.c.kind, e.c.concurrency_limit
        ).join(p, p.c.id == e.c.project_id)

    @staticmethod
    def _env(row: Any) -> Environment:
        return Environment(**dict(row._mapping))

    def get_environment(self, project_slug: str, env_slug: str) -> Environment | None:
        with self._read() as conn:
            row = conn.execute(
                self._env_select().where(t.projects.c.slug == project_slug, t.environments.c.slug == env_slug)
            ).first()
        return self._env(row) if row else None

    def add_api_key(self, environment_id: str, key_hash: str, key_prefix: str, now: float) -> str:
        key_id = new_id("key", now)
        with self._write() as conn:
            conn.execute(
                insert(t.api_keys).values(
                    id=key_id,
                    environment_id=environment_id,
                    key_hash=key_hash,
                    key_prefix=key_prefix,
                    created_at=now,
                )
            )
        return key_id

    def environment_for_key(self, key_hash: str) -> Environment | None:
        k = t.api_keys
        with self._read() as conn:
            row = conn.execute(
                self._env_select()
                .join(k, k.c.environment_id == t.environments.c.id)
                .where(k.c.key_hash == key_hash, k.c.revoked_at.is_(None))
            ).first()
        return self._env(row) if row else None

    # -- versions, tasks, queues -----------------------------------------------------------
    def register_version(self, environment_id: str, date_prefix: str, manifest: dict[str, Any], now: float) -> Version:
        """Record a new version ``{date_prefix}.N`` and make its tasks the current definitions."""
        with self._write_notify() as conn:
            count = conn.execute(
                select(func.count())
                .select_from(t.worker_versions)
                .where(
                    t.worker_versions.c.environment_id == environment_id,
                    t.worker_versions.c.version.like(f"{date_prefix}.%"),
                )
            ).scalar_one()
            version = Version(
                id=new_id("ver", now),
                environment_id=environment_id,
                version=f"{date_prefix}.{count + 1}",
                manifest=manifest,
                created_at=now,
            )
            conn.execute(
                insert(t.worker_versions).values(
                    id=version.id,
                    environment_id=environment_id,
                    version=version.version,
                    manifest=dumps(manifest),
                    created_at=now,
                )
            )
            for task in manifest.get("tasks", []):
                self._upsert_task(conn, environment_id, version.id, task, now)
            self._publish(conn, environment_id)
        return version

    def _upsert_task(self, conn: Connection, env_id: str, version_id: str, task: dict[str, Any], now: float) -> None:
        queue = task["queue"]
        conn.execute(delete(t.tasks).where(t.tasks.c.environment_id == env_id, t.tasks.c.task_id == task["id"]))
        conn.execute(
            insert(t.tasks).values(
                environment_id=env_id,
                task_id=task["id"],
                version_id=version_id,
                queue=queue["name"],
                config=dumps(task),
                updated_at=now,
            )
        )
        conn.execute(delete(t.queues).where(t.queues.c.environment_id == env_id, t.queues.c.name == queue["name"]))
        conn.execute(
            insert(t.queues).values(
                environment_id=env_id,
                name=queue["name"],
                concurrency_limit=queue.get("concurrency_limit"),
                paused=False,
                updated_at=now,
            )
        )

    def get_version(self, version_id: str) -> Version | None:
        v = t.worker_versions
        with self._read() as conn:
            row = conn.execute(select(v).where(v.c.id == version_id)).first()
        if row is None:
            return None
        m = row._mapping
        return Version(m["id"], m["environment_id"], m["version"], loads(m["manifest"]), m["created_at"])

    def get_task(self, environment_id: str, task_id: str) -> TaskDefinition | None:
        with self._read() as conn:
            row = conn.execute(
                select(t.tasks).where(t.tasks.c.environment_id == environment_id, t.tasks.c.task_id == task_id)
            ).first()
        if row is None:
            return None
        m = row._mapping
        return TaskDefinition(m["environment_id"], m["task_id"], m["version_id"], m["queue"], loads(m["config"]))

    # -- triggering ------------------------------------------------------------------------
    def insert_runs(self, new_runs: Sequence[NewRun], now: float) -> list[tuple[Run, bool]]:
        """Insert ``new_runs`` atomically. A run whose idempotency key matches a live run (same task
        and environment, key not expired) is not inserted: that run is returned with ``True``."""
        out: list[tuple[Run, bool]] = []
        with self._write_notify() as conn:
            for new in new_runs:
                existing = self._live_idempotent_run(conn, new, now) if new.idempotency_key else None
                if existing is not None:
                    out.append((existing, True))
                    continue
                conn.execute(insert(t.runs).values(**self._run_values(new)))
                if new.tags:
                    conn.execute(
                        insert(t.run_tags),
                        [{"run_id": new.id, "tag": tag, "environment_id": new.environment_id} for tag in new.tags],
                    )
                self._publish(conn, new.environment_id)
                out.append((self._get_run(conn, new.id), False))
        return out

    def _live_idempotent_run(self, conn: Connection, new: NewRun, now: float) -> Run | None:
        r = t.runs
        where = and_(
            r.c.environment_id == new.environment_id,
            r.c.task_id == new.task_id,
            r.c.idempotency_key == new.idempotency_key,
        )
        row = conn.execute(select(r).where(where)).first()
        if row is None:
            return None
        expires = row._mapping["idempotency_key_expires_at"]
        if expires is not None and expires <= now:
            conn.execute(update(r).where(r.c.id == row._mapping["id"]).values(idempotency_key=None))
            return None
        return Run.from_row(row)

    @staticmethod
    def _run_values(new: NewRun) -> dict[str, Any]:
        return {
            "id": new.id,
            "environment_id": new.environment_id,
            "task_id": new.task_id,
            "queue": new.queue,
            "status": new.status.value,
            "payload": dumps(new.payload),
            "output": None,
            "error": None,
            "tags": dumps(new.tags),
            "metadata": dumps(new.metadata),
            "idempotency_key": new.idempotency_key,
            "idempotency_key_expires_at": new.idempotency_key_expires_at,
            "concurrency_key": new.concurrency_key,
            "priority": new.priority,
            "max_attempts": new.max_attempts,
            "retry": dumps(new.retry),
            "max_duration": new.max_duration,
            "attempt_count": 0,
            "delay_until": new.delay_until,
            "ttl_expires_at": new.ttl_expires_at,
            "available_at": new.available_at,
            "rank_at": new.available_at - new.priority,
            "parent_run_id": new.parent_run_id,
            "root_run_id": new.root_run_id,
            "created_at": new.created_at,
            "updated_at": new.created_at,
        }

    # -- reading runs ----------------------------------------------------------------------
    def _get_run(self, conn: Connection, run_id: str) -> Run:
        return Run.from_row(conn.execute(select(t.runs).where(t.runs.c.id == run_id)).one())

    def get_run(self, run_id: str, environment_id: str | None = None) -> Run | None:
        stmt = select(t.runs).where(t.runs.c.id == run_id)
        if environment_id is not None:
            stmt = stmt.where(t.runs.c.environment_id == environment_id)
        with self._read() as conn:
            row = conn.execute(stmt).first()
        return Run.from_row(row) if row else None

    def list_runs(
        self, environment_id: str, flt: RunFilter, limit: int, cursor: str | None = None
    ) -> tuple[list[Run], str | None]:
        """Newest first. Returns a page and the cursor of the next page (``None`` at the end)."""
        r = t.runs
        stmt = select(r).where(r.c.environment_id == environment_id)
        if flt.statuses:
            stmt = stmt.where(r.c.status.in_(flt.statuses))
        if flt.task_ids:
            stmt = stmt.where(r.c.task_id.in_(flt.task_ids))
        if flt.tag:
            stmt = stmt.where(
                r.c.id.in_(
                    select(t.run_tags.c.run_id).where(
                        t.run_tags.c.environment_id == environment_id, t.run_tags.c.tag == flt.tag
                    )
                )
            )
        if flt.created_from is not None:
            stmt = stmt.where(r.c.created_at >= flt.created_from)
        if flt.created_to is not None:
            stmt = stmt.where(r.c.created_at < flt.created_to)
        if flt.parent_run_id is not None:
            stmt = stmt.where(r.c.parent_run_id == flt.parent_run_id)
        if cursor:
            created, run_id = _decode_cursor(cursor)
            stmt = stmt.where(or_(r.c.created_at < created, and_(r.c.created_at == created, r.c.id < run_id)))
        stmt = stmt.order_by(r.c.created_at.desc(), r.c.id.desc()).limit(limit + 1)
        with self._read() as conn:
            rows = [Run.from_row(row) for row in conn.execute(stmt)]
        if len(rows) > limit:
            rows = rows[:limit]
            return rows, _encode_cursor(rows[-1].created_at, rows[-1].id)
        return rows, None

    def list_attempts(self, run_id: str) -> list[Attempt]:
        with self._read() as conn:
            rows = conn.execute(select(t.attempts).where(t.attempts.c.run_id == run_id).order_by(t.attempts.c.number))
            return [Attempt.from_row(row) for row in rows]

    def child_run_ids(self, run_id: str, statuses: Sequence[str]) -> list[str]:
        with self._read() as conn:
            rows = conn.execute(
                select(t.runs.c.id).where(t.runs.c.parent_run_id == run_id, t.runs.c.status.in_(statuses))
            )
            return [row.id for row in rows]

    # -- the one conditional update ----------------------------------------------------------
    def update_run(
        self,
        run_id: str,
        *,
        expect_status: str,
        expect_attempt: int | None,
        values: dict[str, Any],
        attempt_values: dict[str, Any] | None = None,
        now: float,
    ) -> Run | None:
        """Apply ``values`` to the run only if it is still in ``expect_status`` (and, when given, on
        attempt ``expect_attempt``). Returns the updated run, or ``None`` if the run had moved on:
        a repeated or late request is then a clean no-op. ``attempt_values`` update the attempt
        record of ``expect_attempt`` in the same transaction."""
        r = t.runs
        where = and_(r.c.id == run_id, r.c.status == expect_status)
        if expect_attempt is not None:
            where = and_(where, r.c.attempt_count == expect_attempt)
        encoded: dict[str, Any] = {
            k: (dumps(v) if k in _JSON_COLUMNS and v is not None else v) for k, v in values.items()
        }
        encoded["updated_at"] = now
        if "available_at" in encoded or "priority" in encoded:
            # Keep the claim order: a run is ranked `priority` seconds ahead of when it is available.
            # A SET expression reads the old row, so a new value must be used as given.
            encoded["rank_at"] = encoded.get("available_at", r.c.available_at) - encoded.get("priority", r.c.priority)
        with self._write_notify() as conn:
            result = conn.execute(update(r).where(where).values(**encoded))
            if result.rowcount != 1:
                return None
            if attempt_values and expect_attempt:
                av = {k: (dumps(v) if k == "error" and v is not None else v) for k, v in attempt_values.items()}
                conn.execute(
                    update(t.attempts)
                    .where(t.attempts.c.run_id == run_id, t.attempts.c.number == expect_attempt)
                    .values(**av)
                )
            run = self._get_run(conn, run_id)
            self._publish(conn, run.environment_id)
            return run

    # -- claiming and leases ---------------------------------------------------------------
    def claim_runs(
        self,
        environment_id: str,
        task_ids: Sequence[str],
        *,
        worker_id: str,
        version: str,
        limit: int,
        lease_seconds: float,
        now: float,
    ) -> list[Run]:
        """Move up to ``limit`` ready runs of ``task_ids`` to EXECUTING for ``worker_id``, respecting
        the environment's and each queue's concurrency limit, and open an attempt for each."""
        if limit <= 0 or not task_ids:
            return []
        r, q = t.runs, t.queues
        with self._write_notify() as conn:
            self._lock_for_claim(conn, environment_id)
            env_limit = conn.execute(
                select(t.environments.c.concurrency_limit).where(t.environments.c.id == environment_id)
            ).scalar_one()
            executing: dict[str, int] = dict(
                conn.execute(
                    select(r.c.queue, func.count())
                    .where(r.c.environment_id == environment_id, r.c.status == RunStatus.EXECUTING.value)
                    .group_by(r.c.queue)
                ).all()
            )
            free_env = env_limit - sum(executing.values())
            if free_env <= 0:
                return []
            limits = {
                row.name: (row.concurrency_limit, row.paused)
                for row in conn.execute(select(q).where(q.c.environment_id == environment_id))
            }
            want = min(limit, free_env)
            # Runs of a paused or full queue are left out in SQL: however many of them wait ahead,
            # they must not hide the runs of other queues. A queue that fills up mid-batch is left
            # out of the next round.
            blocked = {
                name
                for name, (queue_limit, paused) in limits.items()
                if paused or (queue_limit is not None and executing.get(name, 0) >= queue_limit)
            }
            claimed: list[str] = []
            while len(claimed) < want:
                progress = False
                ready = select(r.c.id, r.c.queue, r.c.attempt_count).where(
                    r.c.environment_id == environment_id,
                    r.c.status == RunStatus.QUEUED.value,
                    r.c.available_at <= now,
                    r.c.task_id.in_(task_ids),
                )
                if blocked:
                    ready = ready.where(r.c.queue.not_in(sorted(blocked)))
                candidates = conn.execute(
                    self._claim_select(ready.order_by(r.c.rank_at, r.c.id).limit(want - len(claimed)))
                ).all()
                for cand in candidates:
                    if cand.queue in blocked:
                        continue
                    number = cand.attempt_count + 1
                    done = conn.execute(
                        update(r)
                        .where(r.c.id == cand.id, r.c.status == RunStatus.QUEUED.value)
                        .values(
                            status=RunStatus.EXECUTING.value,
                            attempt_count=number,
                            worker_id=worker_id,
                            version=version,
                            lease_expires_at=now + lease_seconds,
                            started_at=func.coalesce(r.c.started_at, now),
                            updated_at=now,
                        )
                    ).rowcount
                    if done != 1:
                        continue
                    conn.execute(
                        insert(t.attempts).values(
                            run_id=cand.id,
                            number=number,
                            status=RunStatus.EXECUTING.value,
                            worker_id=worker_id,
                            version=version,
                            started_at=now,
                        )
                    )
                    progress = True
                    claimed.append(cand.id)
                    executing[cand.queue] = executing.get(cand.queue, 0) + 1
                    queue_limit, _ = limits.get(cand.queue, (None, False))
                    if queue_limit is not None and executing[cand.queue] >= queue_limit:
                        blocked.add(cand.queue)
                if not progress:
                    break  # nothing left that may start
            if not claimed:
                return []
            rows = conn.execute(select(r).where(r.c.id.in_(claimed))).all()
        by_id = {row._mapping["id"]: Run.from_row(row) for row in rows}
        return [by_id[run_id] for run_id in claimed]

    def extend_leases(
        self, worker_id: str, held: Sequence[tuple[str, int]], lease_until: float, now: float
    ) -> list[str]:
        """Extend the leases of runs ``worker_id`` still holds; return the ids it no longer holds."""
        if not held:
            return []
        r = t.runs
        lost: list[str] = []
        with self._write() as conn:
            for run_id, attempt in held:
                n = conn.execute(
                    update(r)
                    .where(
                        r.c.id == run_id,
                        r.c.status == RunStatus.EXECUTING.value,
                        r.c.attempt_count == attempt,
                        r.c.worker_id == worker_id,
                    )
                    .values(lease_expires_at=lease_until)
                ).rowcount
                if n != 1:
                    lost.append(run_id)
        return lost

    def runs_not_held(self, worker_id: str, held: Sequence[tuple[str, int]]) -> list[str]:
        """Of ``held``, the runs that are no longer executing that attempt for ``worker_id``."""
        if not held:
            return []
        r = t.runs
        with self._read() as conn:
            rows = conn.execute(
                select(r.c.id, r.c.status, r.c.attempt_count, r.c.worker_id).where(
                    r.c.id.in_([run_id for run_id, _ in held])
                )
            ).all()
        state = {row.id: row for row in rows}
        lost = []
        for run_id, attempt in held:
            row = state.get(run_id)
            if (
                row is None
                or row.status != RunStatus.EXECUTING.value
                or row.attempt_count != attempt
                or row.worker_id != worker_id
            ):
                lost.append(run_id)
        return lost

    def due_runs(self, now: float, limit: int = 500) -> dict[str, list[Run]]:
        """Runs whose time has come: ``delayed`` (delay passed), ``expired`` (ttl passed, never
        started) and ``lease_expired`` (EXECUTING with a lapsed lease)."""
        r = t.runs
        with self._read() as conn:
            delayed = conn.execute(
                select(r).where(r.c.status == RunStatus.DELAYED.value, r.c.available_at <= now).limit(limit)
            ).all()
            expired = conn.execute(
                select(r)
                .where(
                    r.c.status.in_([RunStatus.QUEUED.value, RunStatus.DELAYED.value, RunStatus.PENDING_VERSION.value]),
                    r.c.ttl_expires_at.is_not(None),
                    r.c.ttl_expires_at <= now,
                    r.c.started_at.is_(None),
                )
                .limit(limit)
            ).all()
            leases = conn.execute(
                select(r).where(r.c.status == RunStatus.EXECUTING.value, r.c.lease_expires_at <= now).limit(limit)
            ).all()
        return {
            "delayed": [Run.from_row(row) for row in delayed],
            "expired": [Run.from_row(row) for row in expired],
            "lease_expired": [Run.from_row(row) for row in leases],
        }

    def next_due_time(self, now: float) -> float | None:
        """The earliest future time at which a run becomes due: a delay or retry backoff ends, a
        ttl or a lease runs out."""
        r = t.runs
        # The same statuses `due_runs` expires: a ttl that ends must wake the scheduler.
        waiting = [RunStatus.PENDING_VERSION.value, RunStatus.DELAYED.value, RunStatus.QUEUED.value]
        with self._read() as conn:
            times = [
                conn.execute(select(func.min(r.c.available_at)).where(r.c.status == RunStatus.DELAYED.value)).scalar(),
                conn.execute(
                    select(func.min(r.c.available_at)).where(
                        r.c.status == RunStatus.QUEUED.value, r.c.available_at > now
                    )
                ).scalar(),
                conn.execute(
                    select(func.min(r.c.ttl_expires_at)).where(r.c.status.in_(waiting), r.c.started_at.is_(None))
                ).scalar(),
                conn.execute(
                    select(func.min(r.c.lease_expires_at)).where(r.c.status == RunStatus.EXECUTING.value)
                ).scalar(),
            ]
        present = [x for x in times if x is not None]
        return min(present) if present else None

    def announce_ready(self, since: float, now: float) -> None:
        """Wake the claimers of environments whose queued runs became available in (since, now]:
        retry backoffs that ended."""
        r = t.runs
        with self._read() as conn:
            rows = conn.execute(
                select(r.c.environment_id)
                .where(r.c.status == RunStatus.QUEUED.value, r.c.available_at > since, r.c.available_at <= now)
                .distinct()
            ).all()
        for row in rows:
            self._dispatch(row.environment_id)

    # -- logs ------------------------------------------------------------------------------
    def append_logs(self, entries: Sequence[LogEntry]) -> None:
        if not entries:
            return
        with self._write() as conn:
            conn.execute(
                insert(t.run_logs),
                [
                    {
                        "run_id": e.run_id,
                        "attempt": e.attempt,
                        "time": e.time,
                        "level": e.level,
                        "message": e.message,
                        "attributes": dumps(e.attributes),
                    }
                    for e in entries
                ],
            )

    def list_logs(self, run_id: str, after_id: int = 0, limit: int = 1000) -> list[tuple[int, LogEntry]]:
        lg = t.run_logs
        with self._read() as conn:
            rows = conn.execute(
                select(lg).where(lg.c.run_id == run_id, lg.c.id > after_id).order_by(lg.c.id).limit(limit)
            ).all()
        return [
            (
                row.id,
                LogEntry(row.run_id, row.attempt, row.time, row.level, row.message, loads(row.attributes)),
            )
            for row in rows
        ]


_JSON_COLUMNS = frozenset({"output", "error", "metadata", "tags", "retry", "payload"})


def _encode_cursor(created_at: float, run_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at, run_id]).encode()).decode()


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        created, run_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return float(created), str(run_id)
    except (ValueError, TypeError) as exc:
        raise ValidationError("cursor: not a cursor returned by this API", details={"field": "cursor"}) from exc
