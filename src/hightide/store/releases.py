"""``store.releases``: a worker gives runs back unfinished (it is stopping, or never received them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, and_, delete, insert, select, update

from hightide.core.states import RunEvent, RunStatus, transition
from hightide.store import schema as t
from hightide.store.changes import Change
from hightide.store.records import Run, RunChange
from hightide.store.seam import Seam
from hightide.store.updates import conditional_update

# What the attempt record says while its run waits in the queue to continue it elsewhere.
RELEASED = "RELEASED"


@dataclass(frozen=True)
class Held:
    """A run a worker holds: the attempt (and the claim's ``execution``, when known) it executes."""

    run_id: str
    attempt: int
    execution: int | None = None
    started: bool = True
    """Whether the task's code may have started (False: prefetched, or never received)."""


class ReleaseOps:
    def __init__(self, seam: Seam) -> None:
        self._seam = seam

    def release_runs(
        self,
        environment_id: str,
        worker_id: str,
        held: Sequence[Held] = (),
        claim_ids: Sequence[str] = (),
        *,
        now: float,
    ) -> list[Run]:
        """EXECUTING → QUEUED, in one transaction, for the runs of ``held`` that ``worker_id`` still
        executes on that attempt (and execution), and for the runs that the claims ``claim_ids``
        took and it still holds; those claims are closed, so that a try of them still on its way
        takes nothing. Returns the runs released.

        A release uses no attempt: the run continues the same attempt on its next claim (as a
        resumed run does; ``resuming``), and keeps its place in the queue (``rank_at``). Its lease
        ends, so it is claimable at once, and its slot is free. A run that moved on meanwhile
        (completed, cancelled, its lease lapsed) is left as it is.

        A run given back before its code started (``Held.started`` false) on its first execution
        is as if never claimed: not started (its ttl applies again) and with no attempt."""
        r = t.runs
        with self._seam.write_notify() as conn:
            wanted: dict[str, Held] = {h.run_id: h for h in held}
            if claim_ids:
                # Under the claim lock: a claim of these ids either committed before (its runs are
                # found here) or comes after, and finds its id closed.
                self._seam.lock_for_claim(conn, environment_id)
                wanted.update(
                    (h.run_id, h) for h in self._close_claims(conn, environment_id, worker_id, claim_ids, now)
                )
            if not wanted:
                return []
            rows = conn.execute(
                select(r.c.id, r.c.worker_id)
                .where(r.c.id.in_(sorted(wanted)), r.c.environment_id == environment_id)
                .order_by(r.c.id)
                .with_for_update()
            ).all()
            target = transition(RunStatus.EXECUTING, RunEvent.RELEASE)
            released: list[str] = []
            for row in rows:
                if row.worker_id != worker_id:
                    continue
                item = wanted[row.id]
                change = RunChange(
                    row.id,
                    RunStatus.EXECUTING.value,
                    item.attempt,
                    {"status": target.value, "resuming": True, "lease_expires_at": None, "claim_id": None},
                    {"status": RELEASED},
                    expect_execution=item.execution,
                )
                if conditional_update(conn, change, now, environment_id):
                    released.append(row.id)
            if not released:
                return []
            self._unstart(conn, [wanted[i] for i in released if not wanted[i].started])
            self._seam.publish(conn, *(Change(environment_id, run_id, RunStatus.QUEUED) for run_id in released))
            found = conn.execute(select(r).where(r.c.id.in_(released)).order_by(r.c.id)).all()
            return [Run.from_row(row) for row in found]

    @staticmethod
    def _unstart(conn: Connection, items: Sequence[Held]) -> None:
        """Undo the claim of runs released before their first execution started: no start time, no
        attempt, no execution (the next claim is its first again). A run that ran before keeps all.
        (That execution never ran, so nothing can report it: its number is free to use again.)"""
        if not items:
            return
        r, a = t.runs, t.attempts
        firsts = [
            row.id
            for row in conn.execute(
                select(r.c.id).where(r.c.id.in_(sorted(h.run_id for h in items)), r.c.executions == 1)
            )
        ]
        if not firsts:
            return
        conn.execute(
            update(r)
            .where(r.c.id.in_(firsts))
            .values(started_at=None, attempt_count=r.c.attempt_count - 1, executions=0, resuming=False)
        )
        numbers = {h.run_id: h.attempt for h in items}
        for run_id in firsts:
            conn.execute(delete(a).where(and_(a.c.run_id == run_id, a.c.number == numbers[run_id])))

    def close_released_attempt(self, run_id: str, attempt: int, status: str, now: float) -> None:
        """Close the attempt a release left open (``RELEASED``), when its run ends without another
        claim (a cancel while queued)."""
        a = t.attempts
        with self._seam.write() as conn:
            conn.execute(
                update(a)
                .where(a.c.run_id == run_id, a.c.number == attempt, a.c.status == RELEASED, a.c.finished_at.is_(None))
                .values(status=status, finished_at=now)
            )

    @staticmethod
    def _close_claims(
        conn: Connection, environment_id: str, worker_id: str, claim_ids: Sequence[str], now: float
    ) -> list[Held]:
        """Mark ``claim_ids`` released (a claim id never seen is recorded released), and return the
        runs they took that ``worker_id`` still executes."""
        c, r = t.claims.c, t.runs
        ids = sorted(set(claim_ids))
        known = {
            row.id: row
            for row in conn.execute(
                select(t.claims).where(c.environment_id == environment_id, c.id.in_(ids)).with_for_update()
            )
        }
        mine = [i for i, row in known.items() if row.worker_id == worker_id]
        if mine:
            conn.execute(
                update(t.claims)
                .where(c.environment_id == environment_id, c.id.in_(mine), c.released_at.is_(None))
                .values(released_at=now)
            )
        unseen = [i for i in ids if i not in known]
        if unseen:
            conn.execute(
                insert(t.claims),
                [
                    {
                        "id": i,
                        "environment_id": environment_id,
                        "worker_id": worker_id,
                        "created_at": now,
                        "released_at": now,
                    }
                    for i in unseen
                ],
            )
        if not mine:
            return []
        rows = conn.execute(
            select(r.c.id, r.c.attempt_count, r.c.executions).where(
                r.c.environment_id == environment_id,
                r.c.status == RunStatus.EXECUTING.value,
                r.c.claim_id.in_(mine),
                r.c.worker_id == worker_id,
            )
        ).all()
        return [Held(row.id, row.attempt_count, row.executions, started=False) for row in rows]  # never received
