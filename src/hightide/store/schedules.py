"""``store.schedules``: cron schedules, declared by tasks or made from the API, and their firing.

Firing is exactly once by construction: ``fire_due`` locks the due schedules it takes (PostgreSQL:
``FOR UPDATE SKIP LOCKED``, so two servers firing at once take different ones; SQLite's writes are
serial), advances each one's ``next_tick_at`` past the tick and inserts the ticks' runs in the same
transaction, with an idempotency key per schedule and tick. A schedule another server fired is no
longer due when its lock frees."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, insert, or_, select, true, update

from hightide.core.ids import new_id
from hightide.store import schema as t
from hightide.store.pages import decode_cursor, encode_cursor
from hightide.store.records import DeclaredSchedule, NewRun, Run, Schedule
from hightide.store.runs import RunOps
from hightide.store.seam import Seam

DECLARATIVE = "declarative"
IMPERATIVE = "imperative"

_EDITABLE = ("task_id", "cron", "timezone", "external_id", "next_tick_at")


@dataclass(frozen=True)
class Firing:
    """A schedule's ``tick`` firing: its next tick after it, and the run it makes (None: skipped)."""

    schedule: Schedule
    tick: float
    next_tick_at: float
    run: NewRun | None


Plan = Callable[[Sequence[Schedule]], Sequence[Firing]]


def sync_declared_schedules(
    conn: Connection, environment_id: str, declared: Sequence[DeclaredSchedule], now: float
) -> None:
    """Make the environment's declarative schedules those of ``declared`` (in a new version's
    transaction): new ones are created, changed ones take their new pattern and next tick, unchanged
    ones keep theirs (and whether a user deactivated them), and those of tasks that no longer declare
    one are deleted."""
    s = t.schedules
    existing = {
        row.task_id: row
        for row in conn.execute(
            select(s.c.id, s.c.task_id, s.c.cron, s.c.timezone).where(
                s.c.environment_id == environment_id, s.c.kind == DECLARATIVE
            )
        )
    }
    wanted = {d.task_id: d for d in declared}
    gone = [row.id for task_id, row in existing.items() if task_id not in wanted]
    if gone:
        conn.execute(delete(s).where(s.c.id.in_(gone)))
    for task_id, d in wanted.items():
        row = existing.get(task_id)
        if row is None:
            conn.execute(
                insert(s).values(
                    id=new_id("sched", now),
                    environment_id=environment_id,
                    task_id=task_id,
                    cron=d.cron,
                    timezone=d.timezone,
                    external_id=None,
                    deduplication_key=None,
                    kind=DECLARATIVE,
                    active=True,
                    next_tick_at=d.next_tick_at,
                    last_tick_at=None,
                    created_at=now,
                    updated_at=now,
                )
            )
        elif (row.cron, row.timezone) != (d.cron, d.timezone):
            conn.execute(
                update(s)
                .where(s.c.id == row.id)
                .values(cron=d.cron, timezone=d.timezone, next_tick_at=d.next_tick_at, updated_at=now)
            )


class ScheduleOps:
    def __init__(self, seam: Seam, runs: RunOps) -> None:
        self._seam = seam
        self._runs = runs

    def create(self, schedule: Schedule) -> tuple[Schedule, bool]:
        """Insert ``schedule``; or, if another of its environment has its ``deduplication_key``,
        update that one in place (task, pattern, timezone, external id; its next tick only if the
        pattern or the timezone changed). Returns the schedule and whether it was created."""
        s = t.schedules
        with self._seam.write() as conn:
            if schedule.deduplication_key is not None:
                row = conn.execute(
                    select(s).where(
                        s.c.environment_id == schedule.environment_id,
                        s.c.deduplication_key == schedule.deduplication_key,
                    )
                ).first()
                if row is not None:
                    old = _schedule(row)
                    values = {
                        "task_id": schedule.task_id,
                        "cron": schedule.cron,
                        "timezone": schedule.timezone,
                        "external_id": schedule.external_id,
                        "updated_at": schedule.updated_at,
                    }
                    if (old.cron, old.timezone) != (schedule.cron, schedule.timezone):
                        values["next_tick_at"] = schedule.next_tick_at
                    conn.execute(update(s).where(s.c.id == old.id).values(**values))
                    return self._get(conn, old.id), False
            conn.execute(insert(s).values(**_values(schedule)))
        return schedule, True

    def get(self, environment_id: str, schedule_id: str) -> Schedule | None:
        s = t.schedules
        with self._seam.read() as conn:
            row = conn.execute(select(s).where(s.c.id == schedule_id, s.c.environment_id == environment_id)).first()
        return _schedule(row) if row else None

    def list(
        self,
        environment_id: str,
        *,
        limit: int = 50,
        cursor: str | None = None,
        task_id: str | None = None,
        kind: str | None = None,
    ) -> tuple[builtins.list[Schedule], str | None]:
        """The environment's schedules, oldest first, ``limit`` at a time; the cursor of the next
        page, or None at the end."""
        s = t.schedules
        where = [s.c.environment_id == environment_id]
        if task_id is not None:
            where.append(s.c.task_id == task_id)
        if kind is not None:
            where.append(s.c.kind == kind)
        if cursor is not None:
            created, last_id = decode_cursor(cursor)
            where.append(or_(s.c.created_at > created, and_(s.c.created_at == created, s.c.id > last_id)))
        stmt = select(s).where(*where).order_by(s.c.created_at, s.c.id).limit(limit + 1)
        with self._seam.read() as conn:
            found = [_schedule(row) for row in conn.execute(stmt)]
        more = len(found) > limit
        found = found[:limit]
        return found, encode_cursor(found[-1].created_at, found[-1].id) if more else None

    def update(self, environment_id: str, schedule_id: str, values: dict[str, Any], now: float) -> Schedule | None:
        """Set ``values`` (of task_id, cron, timezone, external_id, next_tick_at); None if not found."""
        unknown = set(values) - set(_EDITABLE)
        assert not unknown, f"not editable: {unknown}"
        s = t.schedules
        with self._seam.write() as conn:
            done = conn.execute(
                update(s)
                .where(s.c.id == schedule_id, s.c.environment_id == environment_id)
                .values(**values, updated_at=now)
            ).rowcount
            return self._get(conn, schedule_id) if done else None

    def set_active(
        self, environment_id: str, schedule_id: str, active: bool, next_tick_at: float, now: float
    ) -> Schedule | None:
        """Activate (it fires again from ``next_tick_at``, no missed tick) or deactivate a schedule."""
        s = t.schedules
        values: dict[str, Any] = {"active": active, "updated_at": now}
        if active:
            values["next_tick_at"] = next_tick_at
        with self._seam.write() as conn:
            done = conn.execute(
                update(s)
                .where(s.c.id == schedule_id, s.c.environment_id == environment_id, s.c.active == (not active))
                .values(**values)
            ).rowcount
            if not done:  # not found, or already so: nothing changes
                row = conn.execute(select(s).where(s.c.id == schedule_id, s.c.environment_id == environment_id)).first()
                return _schedule(row) if row else None
            return self._get(conn, schedule_id)

    def delete(self, environment_id: str, schedule_id: str) -> bool:
        s = t.schedules
        with self._seam.write() as conn:
            done = conn.execute(delete(s).where(s.c.id == schedule_id, s.c.environment_id == environment_id)).rowcount
        return bool(done)

    # -- firing (the scheduler) -------------------------------------------------------------
    def due(self, now: float, limit: int = 500) -> builtins.list[Schedule]:
        """Active schedules whose next tick is at ``now`` or before, the most overdue first."""
        s = t.schedules
        stmt = (
            select(s)
            .where(s.c.active == true(), s.c.next_tick_at <= now)
            .order_by(s.c.next_tick_at, s.c.id)
            .limit(limit)
        )
        with self._seam.read() as conn:
            return [_schedule(row) for row in conn.execute(stmt)]

    def next_tick_time(self) -> float | None:
        """The earliest next tick of an active schedule (None: there is none)."""
        s = t.schedules
        with self._seam.read() as conn:
            return conn.execute(
                select(s.c.next_tick_at).where(s.c.active == true()).order_by(s.c.next_tick_at).limit(1)
            ).scalar()

    def fire_due(self, now: float, limit: int, plan: Plan) -> tuple[int, builtins.list[Run]]:
        """Fire up to ``limit`` due schedules in one transaction: lock them (PostgreSQL: ``FOR
        UPDATE SKIP LOCKED``, so that another server firing at once takes other schedules), let
        ``plan`` say each one's tick, next tick and run, and apply them all. Returns how many
        schedules were taken (fewer than ``limit``: no more are due) and the runs inserted."""
        s = t.schedules
        due = s.c.active == true(), s.c.next_tick_at <= now
        with self._seam.read() as conn:  # a read first: the scheduler asks at every pass, mostly for nothing
            if conn.execute(select(s.c.id).where(*due).limit(1)).first() is None:
                return 0, []
        with self._seam.write_notify() as conn:
            stmt = select(s).where(*due).order_by(s.c.next_tick_at, s.c.id).limit(limit)
            taken = [_schedule(row) for row in conn.execute(self._seam.claim_select(stmt))]
            return len(taken), self._apply(conn, plan(taken), now) if taken else []

    def fire(self, schedule: Schedule, tick: float, next_tick_at: float, run: NewRun | None, now: float) -> Run | None:
        """Fire ``tick`` of ``schedule`` as read (``fire_due`` with one schedule named): None if the
        schedule moved meanwhile (another server fired it, or it was changed, deactivated or
        deleted); then nothing is written."""
        s = t.schedules
        with self._seam.write_notify() as conn:
            stmt = select(s.c.id).where(
                s.c.id == schedule.id, s.c.next_tick_at == schedule.next_tick_at, s.c.active == true()
            )
            if conn.execute(stmt.with_for_update()).first() is None:
                return None
            inserted = self._apply(conn, [Firing(schedule, tick, next_tick_at, run)], now)
        return inserted[0] if inserted else None

    def _apply(self, conn: Connection, firings: Sequence[Firing], now: float) -> builtins.list[Run]:
        """Under the schedules' locks: move each one's next tick, record its tick as its last, and
        insert the runs (one statement each)."""
        s = t.schedules
        if firings:
            conn.execute(
                update(s)
                .where(s.c.id == bindparam("f_id"))
                .values(next_tick_at=bindparam("f_next"), last_tick_at=bindparam("f_tick"), updated_at=now),
                [{"f_id": f.schedule.id, "f_next": f.next_tick_at, "f_tick": f.tick} for f in firings],
            )
        runs = [f.run for f in firings if f.run is not None]
        return [run for run, _cached in self._runs.insert_runs_in(conn, runs, now)] if runs else []

    @staticmethod
    def _get(conn: Connection, schedule_id: str) -> Schedule:
        return _schedule(conn.execute(select(t.schedules).where(t.schedules.c.id == schedule_id)).one())


def _values(schedule: Schedule) -> dict[str, Any]:
    return {f.name: getattr(schedule, f.name) for f in fields(schedule)}


def _schedule(row: Any) -> Schedule:
    m = row._mapping
    return Schedule(**{f.name: m[f.name] for f in fields(Schedule)} | {"active": bool(m["active"])})
