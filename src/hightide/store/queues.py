"""``store.queues``: queues as their tasks declare them (a concurrency limit, a rate limit), and
what users set on them (pause, a concurrency limit override). A queue's row holds both: a version
registering writes the declared limits and leaves what users set alone."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, case, select, true, update

from hightide.core.ratelimits import PER_KEY, RateLimit
from hightide.store import schema as t
from hightide.store.changes import Change, ChangeKind
from hightide.store.records import Queue
from hightide.store.seam import Seam

_COLUMNS = (
    t.queues.c.name,
    t.queues.c.concurrency_limit,
    t.queues.c.paused,
    t.queues.c.concurrency_limit_override,
    t.queues.c.paused_at,
    t.queues.c.overridden_at,
    t.queues.c.rate_limit,
    t.queues.c.rate_period,
    t.queues.c.rate_per_key,
)


def declare_queue(
    seam: Seam, conn: Connection, environment_id: str, name: str, limit: int | None, rate: RateLimit | None, now: float
) -> None:
    """Record the limits a task of a new version declares for ``name`` (in the version's
    transaction); a pause and an override stay as they were."""
    declared = {
        "concurrency_limit": limit,
        "rate_limit": rate.limit if rate else None,
        "rate_period": rate.period if rate else None,
        "rate_per_key": bool(rate and rate.per_key),
    }
    values = {"environment_id": environment_id, "name": name, "paused": False, **declared, "updated_at": now}
    seam.upsert(conn, t.queues, values, ("environment_id", "name"), (*declared, "updated_at"))


class QueueOps:
    def __init__(self, seam: Seam) -> None:
        self._seam = seam

    def list_queues(self, environment_id: str) -> list[Queue]:
        """The environment's queues (declared by tasks, or paused or overridden by a user), by name."""
        stmt = select(*_COLUMNS).where(t.queues.c.environment_id == environment_id).order_by(t.queues.c.name)
        with self._seam.read() as conn:
            return [_queue(row) for row in conn.execute(stmt)]

    def get_queue(self, environment_id: str, name: str) -> Queue | None:
        q = t.queues
        with self._seam.read() as conn:
            row = conn.execute(select(*_COLUMNS).where(q.c.environment_id == environment_id, q.c.name == name)).first()
        return _queue(row) if row else None

    def set_paused(self, environment_id: str, name: str, paused: bool, now: float) -> Queue:
        """Pause (no run of the queue starts) or resume ``name``; a queue no task declares gets a row.
        Pausing a paused queue keeps the time it was paused at."""
        q = t.queues
        since = case((q.c.paused == true(), q.c.paused_at), else_=now) if paused else None
        fresh = {"paused": paused, "paused_at": now if paused else None}
        return self._set(environment_id, name, now, {"paused": paused, "paused_at": since}, fresh)

    def set_limit_override(self, environment_id: str, name: str, limit: int | None, now: float) -> Queue:
        """Override the queue's declared concurrency limit with ``limit``, or reset it (``None``)."""
        values = {"concurrency_limit_override": limit, "overridden_at": None if limit is None else now}
        return self._set(environment_id, name, now, values, values)

    def _set(self, environment_id: str, name: str, now: float, values: dict[str, Any], fresh: dict[str, Any]) -> Queue:
        """Apply ``values`` to the queue's row, or insert it with ``fresh`` (the same, as plain values)."""
        q = t.queues
        with self._seam.write_notify() as conn:
            done = conn.execute(
                update(q).where(q.c.environment_id == environment_id, q.c.name == name).values(**values, updated_at=now)
            ).rowcount
            if not done:  # a queue only runs name: its row, with no declared limit
                row = {"environment_id": environment_id, "name": name, "concurrency_limit": None, "paused": False}
                self._seam.upsert(conn, q, {**row, **fresh, "updated_at": now}, ("environment_id", "name"), list(fresh))
            queue = conn.execute(select(*_COLUMNS).where(q.c.environment_id == environment_id, q.c.name == name)).one()
            # Claimers of the environment look again: a resumed queue or a higher limit frees runs.
            self._seam.publish(conn, Change(environment_id, kind=ChangeKind.QUEUE))
        return _queue(queue)


def _queue(row: Any) -> Queue:
    m = row._mapping
    return Queue(
        m["name"],
        m["concurrency_limit"],
        bool(m["paused"]),
        m["concurrency_limit_override"],
        m["paused_at"],
        m["overridden_at"],
        rate_limit_of(row),
    )


def rate_limit_of(row: Any) -> RateLimit | None:
    """The rate limit a queue's row declares, if any."""
    m = row._mapping
    if m["rate_limit"] is None or m["rate_period"] is None:
        return None
    return RateLimit(m["rate_limit"], m["rate_period"], PER_KEY if m["rate_per_key"] else None)
