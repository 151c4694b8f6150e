"""``store.runs``: insert (with idempotency), read, list, and change runs.

The conditional update itself is ``store.updates``; paging is ``store.pages``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, insert, literal, select, update

from hightide.core.alerts import FAILED_FOR_ALERTS
from hightide.core.states import FINAL_STATUSES, RunStatus
from hightide.store import schema as t
from hightide.store.alert_events import failed_runs
from hightide.store.changes import Change, ChangeKind, run_change
from hightide.store.pages import filtered, newest_first
from hightide.store.records import (
    Attempt,
    NewRun,
    Run,
    RunChange,
    RunFilter,
    Telemetry,
    dumps,
    run_from_new,
)
from hightide.store.seam import Seam, retried
from hightide.store.telemetry import insert_telemetry
from hightide.store.updates import conditional_update, conditional_updates
from hightide.store.wakeups import finish_awaited


class RunOps:
    def __init__(self, seam: Seam) -> None:
        self._seam = seam

    # -- triggering ------------------------------------------------------------------------
    def insert_runs(self, new_runs: Sequence[NewRun], now: float) -> list[tuple[Run, bool]]:
        """Insert ``new_runs`` atomically. A run whose idempotency key matches a live run (same task
        and environment, key not expired) is not inserted: that run is returned with ``True``."""
        with self._seam.write_notify() as conn:
            return self.insert_runs_in(conn, new_runs, now)

    def insert_runs_in(self, conn: Connection, new_runs: Sequence[NewRun], now: float) -> list[tuple[Run, bool]]:
        """``insert_runs`` inside the caller's write transaction (of ``write_notify``). The runs
        holding the batch's idempotency keys are read in one query; a key twice in the batch gets
        the run its first item made."""
        keyed = self._live_idempotent_runs(conn, [n for n in new_runs if n.idempotency_key], now)
        out: list[tuple[Run, bool]] = []
        rows: list[dict[str, Any]] = []  # inserted together (one executemany), with their tags
        tags: list[dict[str, Any]] = []
        for new in new_runs:
            key = (new.environment_id, new.task_id, new.idempotency_key)
            if new.idempotency_key and key in keyed:
                out.append((keyed[key], True))
                continue
            if new.debounce is not None:
                self._insert_rows(conn, rows, tags)  # the run it pushes back may be one of this batch's
                pushed = self._debounced_run(conn, new, now)
                if pushed is not None:
                    out.append((pushed, True))
                    continue
            rows.append(self._run_values(new))
            tags += [{"run_id": new.id, "tag": tag, "environment_id": new.environment_id} for tag in new.tags]
            self._seam.publish(conn, Change(new.environment_id, new.id, new.status, ChangeKind.CREATED))
            run = run_from_new(new)
            if new.idempotency_key:
                keyed[key] = run
            out.append((run, False))
        self._insert_rows(conn, rows, tags)
        return out

    @staticmethod
    def _insert_rows(conn: Connection, rows: list[dict[str, Any]], tags: list[dict[str, Any]]) -> None:
        """Insert the runs in ``rows``, then their ``tags``, and empty both lists."""
        if rows:
            conn.execute(insert(t.runs), rows)
        if tags:
            conn.execute(insert(t.run_tags), tags)
        rows.clear()
        tags.clear()

    @staticmethod
    def _live_idempotent_runs(
        conn: Connection, keyed: Sequence[NewRun], now: float
    ) -> dict[tuple[str, str, str | None], Run]:
        """The runs holding the idempotency keys of ``keyed`` (by environment, task and key), in one
        read; a key that expired is released on the way (its run keeps going without it)."""
        if not keyed:
            return {}
        r = t.runs
        wanted = {(n.environment_id, n.task_id, n.idempotency_key) for n in keyed}
        rows = conn.execute(
            select(r).where(
                r.c.environment_id.in_(sorted({k[0] for k in wanted})),
                r.c.idempotency_key.in_(sorted({str(k[2]) for k in wanted})),
                r.c.task_id.in_(sorted({k[1] for k in wanted})),
            )
        ).all()
        found: dict[tuple[str, str, str | None], Run] = {}
        expired = []
        for row in rows:
            m = row._mapping
            key = (m["environment_id"], m["task_id"], m["idempotency_key"])
            if key not in wanted:
                continue
            if m["idempotency_key_expires_at"] is not None and m["idempotency_key_expires_at"] <= now:
                expired.append(m["id"])
            else:
                found[key] = Run.from_row(row)
        if expired:
            conn.execute(update(r).where(r.c.id.in_(expired)).values(idempotency_key=None))
        return found

    def _debounced_run(self, conn: Connection, new: NewRun, now: float) -> Run | None:
        """The delayed run of ``new``'s debounce key, pushed back by ``new`` (and given its payload,
        trailing), or ``None`` if there is none: then ``new`` is inserted and holds the key."""
        debounce = new.debounce
        assert debounce is not None
        r = t.runs
        self._seam.lock_name(conn, f"debounce:{new.environment_id}:{new.task_id}:{debounce.key}")
        row = conn.execute(
            select(r).where(
                r.c.environment_id == new.environment_id,
                r.c.task_id == new.task_id,
                r.c.debounce_key == debounce.key,
                r.c.status == RunStatus.DELAYED.value,
            )
        ).first()
        if row is None:
            return None
        run = Run.from_row(row)
        until = now + debounce.delay
        if debounce.max_delay is not None:
            until = min(until, run.created_at + debounce.max_delay)
        until = max(until, run.delay_until or until)
        values: dict[str, Any] = {"delay_until": until, "available_at": until, "updated_at": now}
        if run.ttl_expires_at is not None and run.delay_until is not None:  # the ttl starts after the delay
            values["ttl_expires_at"] = until + (run.ttl_expires_at - run.delay_until)
        if debounce.mode == "trailing":
            values["payload"] = dumps(new.payload)
        conn.execute(update(r).where(r.c.id == run.id, r.c.status == RunStatus.DELAYED.value).values(**values))
        self._seam.publish(conn, Change(run.environment_id, run.id, RunStatus.DELAYED, ChangeKind.STATUS))
        return Run.from_row(conn.execute(select(r).where(r.c.id == run.id)).one())

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
            "debounce_key": new.debounce.key if new.debounce else None,
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
            "resuming": False,
            "executions": 0,
            "trace_id": new.trace_id,
            "span_id": new.span_id,
            "parent_span_id": new.parent_span_id,
            "machine": new.machine,
        }

    # -- reading runs ----------------------------------------------------------------------
    def _get_run(self, conn: Connection, run_id: str) -> Run:
        return Run.from_row(conn.execute(select(t.runs).where(t.runs.c.id == run_id)).one())

    def get_run(self, run_id: str, environment_id: str | None = None) -> Run | None:
        stmt = select(t.runs).where(t.runs.c.id == run_id)
        if environment_id is not None:
            stmt = stmt.where(t.runs.c.environment_id == environment_id)
        with self._seam.read() as conn:
            row = conn.execute(stmt).first()
        return Run.from_row(row) if row else None

    def list_runs(
        self, environment_id: str, flt: RunFilter, limit: int, cursor: str | None = None
    ) -> tuple[list[Run], str | None]:
        """Newest first. Returns a page and the cursor of the next page (``None`` at the end)."""
        with self._seam.read() as conn:
            return newest_first(
                conn, filtered(select(t.runs), environment_id, flt), t.runs, Run.from_row, limit, cursor
            )

    def count_runs(self, environment_id: str, flt: RunFilter) -> int:
        """How many runs ``flt`` selects now (one count over the filter's list index)."""
        stmt = filtered(select(func.count()).select_from(t.runs), environment_id, flt)
        with self._seam.read() as conn:
            return int(conn.execute(stmt).scalar_one())

    def children_of(self, environment_id: str, parent_run_id: str, limit: int) -> tuple[list[Run], bool]:
        """The first ``limit`` runs ``parent_run_id`` triggered, oldest first, and whether it has more.
        Read on ``ix_runs_parent``: the environment's condition is written so that SQLite cannot
        take it for an index term (``environment_id || ''``), else it walks the environment's runs on
        ``ix_runs_list`` to spare itself sorting the few children."""
        r = t.runs
        stmt = (
            select(r)
            .where(r.c.parent_run_id == parent_run_id, r.c.environment_id.op("||")(literal("")) == environment_id)
            .order_by(r.c.created_at, r.c.id)
            .limit(limit + 1)
        )
        with self._seam.read() as conn:
            rows = [Run.from_row(row) for row in conn.execute(stmt)]
        return rows[:limit], len(rows) > limit

    def list_attempts(self, run_id: str) -> list[Attempt]:
        with self._seam.read() as conn:
            rows = conn.execute(select(t.attempts).where(t.attempts.c.run_id == run_id).order_by(t.attempts.c.number))
            return [Attempt.from_row(row) for row in rows]

    def child_run_ids(self, parent_ids: Sequence[str], statuses: Sequence[str]) -> list[str]:
        """The ids of the runs in ``statuses`` that any of ``parent_ids`` triggered."""
        with self._seam.read() as conn:
            rows = conn.execute(
                select(t.runs.c.id).where(t.runs.c.parent_run_id.in_(parent_ids), t.runs.c.status.in_(statuses))
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
        lease_lapsed_by: float | None = None,
        now: float,
    ) -> Run | None:
        """Apply ``values`` to the run only if it is still in ``expect_status`` (and, when given, on
        attempt ``expect_attempt``). Returns the updated run, or ``None`` if the run had moved on:
        a repeated or late request is then a clean no-op. ``attempt_values`` update the attempt
        record of ``expect_attempt`` in the same transaction. ``lease_lapsed_by`` also requires the
        lease to have lapsed by then."""
        change = RunChange(run_id, expect_status, expect_attempt, values, attempt_values, lease_lapsed_by)
        return self.apply_change(change, now)

    @retried
    def apply_change(self, change: RunChange, now: float) -> Run | None:
        """``update_run`` with the conditions of ``change`` (see ``RunChange``)."""
        with self._seam.write_notify() as conn:
            if not conditional_update(conn, change, now):
                return None
            self._after_updates(conn, [change], now)
            run = self._get_run(conn, change.run_id)
            self._seam.publish(conn, run_change(run.environment_id, run.id, run.status.value, change.expect_status))
            return run

    @retried
    def update_runs(
        self, environment_id: str, changes: Sequence[RunChange], now: float, telemetry: Telemetry | None = None
    ) -> list[bool]:
        """Several conditional updates of runs of one environment in one transaction (a worker's
        batch of results, with the logs and spans that came with it). Returns, per change, whether
        it applied."""
        with self._seam.write_notify() as conn:
            insert_telemetry(conn, telemetry)
            if len(changes) > 1 and len({c.run_id for c in changes}) == len(changes):
                applied = conditional_updates(conn, changes, now, environment_id)
            else:
                applied = [conditional_update(conn, change, now, environment_id) for change in changes]
            if any(applied):
                done = [c for c, ok in zip(changes, applied, strict=True) if ok]
                self._after_updates(conn, done, now)
                self._seam.publish(
                    conn, *(run_change(environment_id, c.run_id, c.values["status"], c.expect_status) for c in done)
                )
        return applied

    def _after_updates(self, conn: Connection, changes: Sequence[RunChange], now: float) -> None:
        """In the same transaction, after the runs' own rows: whoever waits on the runs that just
        finished is queued again (one batch, rows locked in id order), and the webhooks of runs that
        failed for good get their ``run.failed`` deliveries."""
        final = {c.run_id: c.values["status"] for c in changes if c.values.get("status") in FINAL_VALUES}
        self._seam.publish(conn, *finish_awaited(conn, final, now))
        failed_runs(conn, [run_id for run_id, status in final.items() if status in ALERTED_VALUES], now)

    def reset_idempotency_key(self, environment_id: str, task_id: str, key: str) -> int:
        """Forget ``key`` for ``task_id``: the next trigger with it creates a new run. Returns how many
        runs held it (0 or 1)."""
        r = t.runs
        with self._seam.write() as conn:
            return conn.execute(
                update(r)
                .where(r.c.environment_id == environment_id, r.c.task_id == task_id, r.c.idempotency_key == key)
                .values(idempotency_key=None)
            ).rowcount

    def get_runs(self, run_ids: Sequence[str], environment_id: str) -> dict[str, Run]:
        with self._seam.read() as conn:
            rows = conn.execute(
                select(t.runs).where(t.runs.c.id.in_(run_ids), t.runs.c.environment_id == environment_id)
            )
            return {row._mapping["id"]: Run.from_row(row) for row in rows}

    # -- counts (the dashboard's overviews) --------------------------------------------------
    def count_by_task(
        self, environment_id: str, created_from: float, limit: int
    ) -> tuple[dict[str, dict[str, int]], int]:
        """The newest ``limit`` runs created since ``created_from``, counted by task and status, and
        how many were counted (``limit`` when there were more). One grouped query whose cost is
        bounded by ``limit``: it reads the ``(environment_id, created_at)`` index newest first."""
        r = t.runs
        newest = (
            select(r.c.task_id, r.c.status)
            .where(r.c.environment_id == environment_id, r.c.created_at >= created_from)
            .order_by(r.c.created_at.desc())
            .limit(limit)
            .subquery()
        )
        stmt = select(newest.c.task_id, newest.c.status, func.count().label("n")).group_by(
            newest.c.task_id, newest.c.status
        )
        counts: dict[str, dict[str, int]] = {}
        total = 0
        with self._seam.read() as conn:
            for row in conn.execute(stmt):
                counts.setdefault(row.task_id, {})[row.status] = int(row.n)
                total += int(row.n)
        return counts, total

    def latest_of_task(self, environment_id: str, task_id: str, limit: int) -> list[Run]:
        """The newest ``limit`` runs of one task, newest first: read in order from the
        ``(environment_id, task_id, created_at, id)`` index, whatever the task's number of runs."""
        r = t.runs
        stmt = (
            select(r)
            .where(r.c.environment_id == environment_id, r.c.task_id == task_id)
            .order_by(r.c.created_at.desc(), r.c.id.desc())
            .limit(limit)
        )
        with self._seam.read() as conn:
            return [Run.from_row(row) for row in conn.execute(stmt)]

    def count_active_by_queue(self, environment_id: str) -> dict[str, dict[str, int]]:
        """The environment's runs QUEUED or EXECUTING now, counted by queue and status: one grouped
        query over the ``(environment_id, status, queue)`` index alone (it reads no run)."""
        r = t.runs
        stmt = (
            select(r.c.queue, r.c.status, func.count().label("n"))
            .where(r.c.environment_id == environment_id, r.c.status.in_(ACTIVE_STATUSES))
            .group_by(r.c.queue, r.c.status)
        )
        counts: dict[str, dict[str, int]] = {}
        with self._seam.read() as conn:
            for row in conn.execute(stmt):
                counts.setdefault(row.queue, {})[row.status] = int(row.n)
        return counts


FINAL_VALUES = frozenset(s.value for s in FINAL_STATUSES)
ALERTED_VALUES = frozenset(s.value for s in FAILED_FOR_ALERTS)
ACTIVE_STATUSES = (RunStatus.QUEUED.value, RunStatus.EXECUTING.value)
