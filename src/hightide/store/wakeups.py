"""Resolving waitpoints and queuing again the runs that no longer wait for anything.

Plain functions on a connection, so that they run inside the transaction that caused them: a child
run finishing, a token completed, a timer firing, a run cancelled.

Locking the waiting runs before counting their remaining links means that two children of one batch
finishing at once cannot both miss the last link. Rows are locked in id order, waitpoints before the
waiting runs; a transaction that still deadlocks on PostgreSQL (a finishing run's own row is locked
first) is rolled back and run again (``seam.retried``).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, delete, select, update

from hightide.core.states import RunEvent, RunStatus, transition
from hightide.store import schema as t
from hightide.store.changes import Change
from hightide.store.records import dumps

WAITING = "WAITING"


def complete_waitpoints(
    conn: Connection, ids: Sequence[str], status: str, now: float, output: object = None
) -> list[str]:
    """Resolve those of ``ids`` that are still WAITING; returns their ids."""
    if not ids:
        return []
    w = t.waitpoints
    # In id order: two servers' schedulers firing the same due timers must not deadlock.
    open_ids = [
        row.id
        for row in conn.execute(
            select(w.c.id).where(w.c.id.in_(ids), w.c.status == WAITING).order_by(w.c.id).with_for_update()
        )
    ]
    if open_ids:
        values: dict[str, object] = {"status": status, "completed_at": now}
        if output is not None:
            values["output"] = dumps(output)
        conn.execute(update(w).where(w.c.id.in_(open_ids), w.c.status == WAITING).values(**values))
    return open_ids


def resume_waiting(conn: Connection, waitpoint_ids: Sequence[str], now: float) -> list[Change]:
    """Drop the links to ``waitpoint_ids`` (just resolved) and queue the WAITING runs left with no
    link. Returns the changes of the runs queued, to wake their claimers."""
    if not waitpoint_ids:
        return []
    rw, r = t.run_waitpoints, t.runs
    linked = [row.run_id for row in conn.execute(select(rw.c.run_id).where(rw.c.waitpoint_id.in_(waitpoint_ids)))]
    if not linked:
        return []
    conn.execute(delete(rw).where(rw.c.waitpoint_id.in_(waitpoint_ids)))
    candidates = conn.execute(
        select(r.c.id, r.c.environment_id)
        .where(r.c.id.in_(sorted(set(linked))), r.c.status == RunStatus.WAITING.value)
        .order_by(r.c.id)
        .with_for_update()
    ).all()
    if not candidates:
        return []
    still_waiting = {
        row.run_id
        for row in conn.execute(select(rw.c.run_id).where(rw.c.run_id.in_([row.id for row in candidates])).distinct())
    }
    ready = [row for row in candidates if row.id not in still_waiting]
    if not ready:
        return []
    target = transition(RunStatus.WAITING, RunEvent.RESUME)
    conn.execute(  # `rank_at`: the claim order, `priority` seconds ahead of when it is available
        update(r)
        .where(r.c.id.in_([row.id for row in ready]), r.c.status == RunStatus.WAITING.value)
        .values(status=target.value, resuming=True, available_at=now, rank_at=now - r.c.priority, updated_at=now)
    )
    return [Change(row.environment_id, row.id, target) for row in ready]


def finish_awaited(conn: Connection, finished: dict[str, str], now: float) -> list[Change]:
    """The runs in ``finished`` (run id → final status) just finished: resolve the RUN waitpoints
    on them, release what they waited for, and for cancelled ones cancel the tokens they created and
    close their suspended attempt. Returns the changes of the runs queued again."""
    if not finished:
        return []
    w, rw, a = t.waitpoints, t.run_waitpoints, t.attempts
    ids = sorted(finished)
    awaited = [
        row.id
        for row in conn.execute(
            select(w.c.id).where(w.c.run_id.in_(ids), w.c.status == WAITING).order_by(w.c.id).with_for_update()
        )
    ]
    resolved = complete_waitpoints(conn, awaited, "COMPLETED", now)
    ended = [run_id for run_id in ids if finished[run_id] != RunStatus.COMPLETED.value]
    if ended:  # only a run that never resumed can end with links left
        conn.execute(delete(rw).where(rw.c.run_id.in_(ended)))
    cancelled = [run_id for run_id in ids if finished[run_id] == RunStatus.CANCELED.value]
    if cancelled:
        owned = [
            row.id
            for row in conn.execute(
                select(w.c.id)
                .where(w.c.owner_run_id.in_(cancelled), w.c.kind == "TOKEN", w.c.status == WAITING)
                .order_by(w.c.id)
                .with_for_update()
            )
        ]
        resolved += complete_waitpoints(conn, owned, "CANCELED", now)
        conn.execute(
            update(a)
            .where(a.c.run_id.in_(cancelled), a.c.status == RunStatus.WAITING.value)
            .values(status=RunStatus.CANCELED.value, finished_at=now)
        )
    return resume_waiting(conn, resolved, now)
