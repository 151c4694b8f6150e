"""``store.waitpoints``: waitpoints, run journals and suspension, what durable execution stores (see
docs/durable-execution.md). A journal entry that triggers children inserts them through ``RunOps``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from hightide.core.ids import new_id
from hightide.core.states import RunEvent, RunStatus, transition
from hightide.errors import AlreadyExistsError, ConflictError
from hightide.store import schema as t
from hightide.store.changes import Change
from hightide.store.pages import newest_first
from hightide.store.records import (
    JournalEntry,
    JournalView,
    NewRun,
    Run,
    Suspension,
    Telemetry,
    Waitpoint,
    dumps,
    loads,
    run_from_new,
)
from hightide.store.runs import RunOps
from hightide.store.seam import Seam, retried
from hightide.store.telemetry import insert_telemetry
from hightide.store.wakeups import WAITING, complete_waitpoints, resume_waiting


class WaitpointOps:
    def __init__(self, seam: Seam, runs: RunOps) -> None:
        self._seam = seam
        self._runs = runs  # children inserted with a journal entry

    # -- the journal -----------------------------------------------------------------------
    @retried
    def record_entry(
        self,
        entry: JournalEntry,
        attempt: int,
        *,
        new_runs: Sequence[NewRun] = (),
        await_runs: bool = False,
        waitpoint: Waitpoint | None = None,
        execution: int | None = None,
        now: float,
    ) -> tuple[JournalEntry, bool]:
        """Record one durable operation of a run executing ``attempt``, with what it does, in one
        transaction: insert ``new_runs`` (its result lists them; with ``await_runs`` a RUN waitpoint
        waits on each), or insert ``waitpoint`` (or reuse the live one with its idempotency key).
        ``entry.waitpoint_ids`` are kept as given (an existing token to wait for). With
        ``execution``, only that execution (claim) of the run may record.

        If the position is already recorded, nothing is done: that entry is returned with ``False``."""
        for tries_left in (1, 0):
            try:
                return self._record(entry, attempt, execution, new_runs, await_runs, waitpoint, now)
            except AlreadyExistsError:
                # Another execution of the run recorded this position first (its entry stands), or a
                # child's idempotency key raced another trigger (now it is visible: try once more).
                with self._seam.read() as conn:
                    existing = self._entry(conn, entry.run_id, entry.seq)
                if existing is not None:
                    return existing, False
                if not tries_left:
                    raise
        raise AssertionError("unreachable")

    def _record(
        self,
        entry: JournalEntry,
        attempt: int,
        execution: int | None,
        new_runs: Sequence[NewRun],
        await_runs: bool,
        waitpoint: Waitpoint | None,
        now: float,
    ) -> tuple[JournalEntry, bool]:
        with self._seam.write_notify() as conn:
            existing = self._entry(conn, entry.run_id, entry.seq)
            if existing is not None:
                return existing, False
            self._check_executing(conn, entry.run_id, attempt, execution)
            waitpoint_ids = list(entry.waitpoint_ids)
            result = entry.result
            if new_runs:
                inserted = self._runs.insert_runs_in(conn, new_runs, now)
                result = {"runs": [{"id": run.id, "task_id": run.task_id, "is_cached": c} for run, c in inserted]}
                if await_runs:
                    waitpoint_ids = self._await_runs(conn, [run for run, _ in inserted], entry, now)
            if waitpoint is not None:
                waitpoint_ids = [self._insert_waitpoint(conn, waitpoint, now)[0].id]
            recorded = replace(entry, result=result, waitpoint_ids=waitpoint_ids, created_at=now, attempt=attempt)
            conn.execute(
                insert(t.run_journal).values(
                    run_id=recorded.run_id,
                    seq=recorded.seq,
                    kind=recorded.kind,
                    name=recorded.name,
                    result=dumps(recorded.result),
                    waitpoint_ids=dumps(recorded.waitpoint_ids),
                    attempt=attempt,
                    created_at=now,
                )
            )
            return recorded, True

    @retried
    def retrigger_children(
        self, entry: JournalEntry, attempt: int, replacements: dict[str, NewRun], now: float
    ) -> JournalEntry:
        """Give the entry ``entry`` (a wait on children) new runs in place of the failed children named in
        ``replacements`` (old run id → the new run), and make it ``attempt``'s: a retried parent waits
        for fresh children where the previous attempt stopped on a failure."""
        j, w = t.run_journal, t.waitpoints
        with self._seam.write_notify() as conn:
            self._runs.insert_runs_in(conn, list(replacements.values()), now)
            ids = list(entry.waitpoint_ids)
            old = {row.id: row.run_id for row in conn.execute(select(w.c.id, w.c.run_id).where(w.c.id.in_(ids)))}
            for i, wp_id in enumerate(ids):
                new = replacements.get(old.get(wp_id) or "")
                if new is not None:
                    ids[i] = self._await_runs(conn, [run_from_new(new)], entry, now)[0]
            runs = [
                {**r, "id": replacements[r["id"]].id, "is_cached": False} if r["id"] in replacements else r
                for r in (entry.result or {}).get("runs", [])
            ]
            updated = replace(entry, result={"runs": runs}, waitpoint_ids=ids, attempt=attempt)
            conn.execute(
                update(j)
                .where(j.c.run_id == entry.run_id, j.c.seq == entry.seq)
                .values(result=dumps(updated.result), waitpoint_ids=dumps(ids), attempt=attempt)
            )
            return updated

    @staticmethod
    def _entry(conn: Connection, run_id: str, seq: str) -> JournalEntry | None:
        j = t.run_journal
        row = conn.execute(select(j).where(j.c.run_id == run_id, j.c.seq == seq)).first()
        return JournalEntry.from_row(row) if row else None

    @staticmethod
    def _check_executing(conn: Connection, run_id: str, attempt: int, execution: int | None) -> None:
        r = t.runs
        # Locked, so that a cancel cannot slip in between this check and the children's insert.
        row = conn.execute(
            select(r.c.status, r.c.attempt_count, r.c.executions).where(r.c.id == run_id).with_for_update()
        ).first()
        stale = execution is not None and row is not None and row.executions != execution
        if row is None or row.status != RunStatus.EXECUTING.value or row.attempt_count != attempt or stale:
            state = row.status if row else "gone"
            raise ConflictError(
                f"run {run_id} is {state}, not executing attempt {attempt}; its durable operation was not recorded",
                details={"run": run_id, "status": state},
            )

    @staticmethod
    def _await_runs(conn: Connection, runs: Sequence[Run], entry: JournalEntry, now: float) -> list[str]:
        """A RUN waitpoint on each of ``runs``, in order, in two statements: already COMPLETED on a
        run that is (an idempotency key can return a run that finished long ago)."""
        r = t.runs
        # An existing run (cached by its key) may be finishing right now: wait for that transaction,
        # which cannot see this waitpoint, and read the status it leaves.
        statuses = dict(
            conn.execute(
                select(r.c.id, r.c.status)
                .where(r.c.id.in_(sorted({run.id for run in runs})))
                .order_by(r.c.id)
                .with_for_update(read=True)
            ).all()
        )
        waitpoints = []
        for run in runs:
            final = RunStatus(statuses[run.id]).is_final
            waitpoints.append(
                Waitpoint(
                    id=new_id("waitpoint", now),
                    environment_id=run.environment_id,
                    kind="RUN",
                    status="COMPLETED" if final else WAITING,
                    run_id=run.id,
                    owner_run_id=entry.run_id,
                    created_at=now,
                    completed_at=now if final else None,
                )
            )
        if waitpoints:
            conn.execute(insert(t.waitpoints), [_waitpoint_values(wp) for wp in waitpoints])
        return [wp.id for wp in waitpoints]

    def _insert_waitpoint(self, conn: Connection, wp: Waitpoint, now: float) -> tuple[Waitpoint, bool]:
        """Insert ``wp``, unless a live waitpoint of its kind has its idempotency key: then return
        that one with ``True``."""
        w = t.waitpoints
        if wp.idempotency_key is not None:
            row = conn.execute(
                select(w).where(
                    w.c.environment_id == wp.environment_id,
                    w.c.kind == wp.kind,
                    w.c.idempotency_key == wp.idempotency_key,
                )
            ).first()
            if row is not None:
                found = Waitpoint.from_row(row)
                expires = found.idempotency_key_expires_at
                if expires is None or expires > now:
                    return found, True
                conn.execute(update(w).where(w.c.id == found.id).values(idempotency_key=None))
        conn.execute(insert(w).values(**_waitpoint_values(wp)))
        return wp, False

    def journal_view(self, run_ids: Sequence[str]) -> JournalView:
        """The journals of ``run_ids`` with the waitpoints their entries wait on and the runs those
        waitpoints await, read in one go (a claim hands these to the worker)."""
        if not run_ids:
            return JournalView({}, {}, {})
        j = t.run_journal
        with self._seam.read() as conn:
            rows = conn.execute(select(j).where(j.c.run_id.in_(run_ids)).order_by(j.c.run_id, j.c.seq)).all()
            entries: dict[str, list[JournalEntry]] = {}
            for row in rows:
                entry = JournalEntry.from_row(row)
                entries.setdefault(entry.run_id, []).append(entry)
            return self._with_waits(conn, entries)

    def entry_view(self, entry: JournalEntry) -> JournalView:
        """One entry with what its waits depend on."""
        with self._seam.read() as conn:
            return self._with_waits(conn, {entry.run_id: [entry]})

    @staticmethod
    def _with_waits(conn: Connection, entries: dict[str, list[JournalEntry]]) -> JournalView:
        w, r = t.waitpoints, t.runs
        wp_ids = {i for run_entries in entries.values() for e in run_entries for i in e.waitpoint_ids}
        waitpoints = {}
        if wp_ids:
            waitpoints = {row.id: Waitpoint.from_row(row) for row in conn.execute(select(w).where(w.c.id.in_(wp_ids)))}
        awaited = {wp.run_id for wp in waitpoints.values() if wp.run_id}
        runs = {}
        if awaited:
            runs = {row.id: Run.from_row(row) for row in conn.execute(select(r).where(r.c.id.in_(awaited)))}
        return JournalView(entries, waitpoints, runs)

    # -- suspending ------------------------------------------------------------------------
    @retried
    def suspend_runs(
        self, items: Sequence[Suspension], now: float, telemetry: Telemetry | None = None
    ) -> list[RunStatus | None]:
        """A worker's batch of suspensions in one transaction (with the logs and spans that came
        with it), a few statements for the whole batch: for each, record its new timers, then
        suspend it on the waitpoints of its positions ``waiting_on``. ``None`` for a stale one (not
        that execution any more, or a timer position already recorded: not this execution's to
        record)."""
        j, w, r, a = t.run_journal, t.waitpoints, t.runs, t.attempts
        with self._seam.write_notify() as conn:
            insert_telemetry(conn, telemetry)
            # The runs first, locked: a suspension links only runs it holds. (Nothing else locks an
            # executing run and then its waitpoints, so this order cannot deadlock with a wake-up.)
            rows = {
                row.id: row
                for row in conn.execute(
                    select(r.c.id, r.c.status, r.c.attempt_count, r.c.worker_id, r.c.executions, r.c.environment_id)
                    .where(r.c.id.in_(sorted({i.run_id for i in items})))
                    .order_by(r.c.id)
                    .with_for_update()
                )
            }
            recorded = {
                (row.run_id, row.seq): loads(row.waitpoint_ids)
                for row in conn.execute(
                    select(j.c.run_id, j.c.seq, j.c.waitpoint_ids).where(j.c.run_id.in_(list(rows)))
                )
            }
            valid = [i for i in items if _holds(rows.get(i.run_id), i) and not _re_records(i, recorded)]
            entries, timers = [], []
            for item in valid:
                for entry, timer in item.timers:
                    if timer.idempotency_key is not None:  # may wait on a live timer with that key
                        timer = self._insert_waitpoint(conn, timer, now)[0]
                    else:
                        timers.append(timer)
                    recorded[(item.run_id, entry.seq)] = [timer.id]
                    entries.append(
                        {
                            "run_id": item.run_id,
                            "seq": entry.seq,
                            "kind": entry.kind,
                            "name": entry.name,
                            "result": dumps(None),
                            "waitpoint_ids": dumps([timer.id]),
                            "attempt": item.attempt,
                            "created_at": now,
                        }
                    )
            if timers:
                conn.execute(insert(w), [_waitpoint_values(timer) for timer in timers])
            if entries:
                conn.execute(insert(j), entries)
            waits = {i.run_id: {wp for seq in i.waiting_on for wp in recorded.get((i.run_id, seq), [])} for i in valid}
            # Waitpoints next (see wakeups.py): a completion racing with this suspension either sees
            # the links or is seen as resolved here.
            pending = {
                row.id
                for row in conn.execute(
                    select(w.c.id)
                    .where(w.c.id.in_(sorted(set().union(*waits.values()))), w.c.status == WAITING)
                    .order_by(w.c.id)
                    .with_for_update()
                )
            }
            waiting = [i for i in valid if waits[i.run_id] & pending]
            ready = [i for i in valid if not waits[i.run_id] & pending]
            suspended = transition(RunStatus.EXECUTING, RunEvent.SUSPEND)
            resumed = transition(suspended, RunEvent.RESUME)
            if waiting:
                conn.execute(
                    update(r)
                    .where(r.c.id.in_([i.run_id for i in waiting]))
                    .values(status=suspended.value, lease_expires_at=None, worker_id=None, updated_at=now)
                )
                links = [{"run_id": i.run_id, "waitpoint_id": wp} for i in waiting for wp in waits[i.run_id] & pending]
                conn.execute(insert(t.run_waitpoints), links)
                self._seam.publish(conn, *(Change(rows[i.run_id].environment_id, i.run_id, suspended) for i in waiting))
            if ready:  # everything it waits for resolved while it was stopping: straight back to the queue
                conn.execute(
                    update(r)
                    .where(r.c.id.in_([i.run_id for i in ready]))
                    .values(
                        status=resumed.value,
                        resuming=True,
                        available_at=now,
                        rank_at=now - r.c.priority,
                        lease_expires_at=None,
                        worker_id=None,
                        updated_at=now,
                    )
                )
                self._seam.publish(conn, *(Change(rows[i.run_id].environment_id, i.run_id, resumed) for i in ready))
            if valid:
                conn.execute(
                    update(a)
                    .where(a.c.run_id == bindparam("r"), a.c.number == bindparam("n"))
                    .values(status=suspended.value),
                    [{"r": i.run_id, "n": i.attempt} for i in valid],
                )
        status = {i.run_id: suspended for i in waiting} | {i.run_id: resumed for i in ready}
        return [status.get(i.run_id) for i in items]

    # -- resolving waitpoints --------------------------------------------------------------
    @retried
    def resolve_waitpoint(self, waitpoint_id: str, status: str, now: float, output: Any = None) -> bool:
        """Complete (or time out) one WAITING waitpoint and queue the runs that waited only on it.
        ``False`` if it was no longer WAITING."""
        with self._seam.write_notify() as conn:
            done = complete_waitpoints(conn, [waitpoint_id], status, now, output)
            self._seam.publish(conn, *resume_waiting(conn, done, now))
        return bool(done)

    @retried
    def resolve_due_waitpoints(self, now: float, limit: int = 1000) -> int:
        """Fire the timers whose time came and time out the tokens past their timeout, in one
        transaction. Returns how many waitpoints resolved."""
        w = t.waitpoints
        due_timers = select(w.c.id).where(w.c.status == WAITING, w.c.resume_at <= now).limit(limit)
        due_tokens = select(w.c.id).where(w.c.status == WAITING, w.c.timeout_at <= now).limit(limit)
        with self._seam.read() as conn:  # the scheduler asks often: take the write lock only for work
            timers = [row.id for row in conn.execute(due_timers)]
            tokens = [row.id for row in conn.execute(due_tokens)]
        if not timers and not tokens:
            return 0
        with self._seam.write_notify() as conn:  # those still WAITING (see complete_waitpoints)
            done = complete_waitpoints(conn, timers, "COMPLETED", now)
            done += complete_waitpoints(conn, tokens, "TIMED_OUT", now)
            self._seam.publish(conn, *resume_waiting(conn, done, now))
        return len(done)

    # -- tokens ----------------------------------------------------------------------------
    def create_waitpoint(self, wp: Waitpoint, now: float) -> tuple[Waitpoint, bool]:
        """Insert ``wp`` (or return the live one with its idempotency key, and ``True``)."""
        try:
            with self._seam.write() as conn:
                return self._insert_waitpoint(conn, wp, now)
        except AlreadyExistsError:  # the same key inserted at the same moment elsewhere: now visible
            with self._seam.write() as conn:
                return self._insert_waitpoint(conn, wp, now)

    def get_waitpoint(self, waitpoint_id: str, environment_id: str | None) -> Waitpoint | None:
        """The waitpoint, in ``environment_id`` (``None``: in any environment)."""
        w = t.waitpoints
        stmt = select(w).where(w.c.id == waitpoint_id)
        if environment_id is not None:
            stmt = stmt.where(w.c.environment_id == environment_id)
        with self._seam.read() as conn:
            row = conn.execute(stmt).first()
        return Waitpoint.from_row(row) if row else None

    def waiting_runs(self, waitpoint_id: str) -> list[str]:
        """The runs suspended on ``waitpoint_id``."""
        rw = t.run_waitpoints
        with self._seam.read() as conn:
            return [row.run_id for row in conn.execute(select(rw.c.run_id).where(rw.c.waitpoint_id == waitpoint_id))]

    def waiting_runs_of(self, waitpoint_ids: Sequence[str]) -> dict[str, list[str]]:
        """The runs suspended on each of ``waitpoint_ids`` (those with none are left out)."""
        rw = t.run_waitpoints
        found: dict[str, list[str]] = {}
        if not waitpoint_ids:
            return found
        stmt = select(rw.c.waitpoint_id, rw.c.run_id).where(rw.c.waitpoint_id.in_(list(waitpoint_ids)))
        with self._seam.read() as conn:
            for row in conn.execute(stmt.order_by(rw.c.waitpoint_id, rw.c.run_id)):
                found.setdefault(row.waitpoint_id, []).append(row.run_id)
        return found

    def open_waitpoints(self, run_id: str) -> list[Waitpoint]:
        """What the suspended run ``run_id`` still waits for (empty unless it is WAITING)."""
        w, rw = t.waitpoints, t.run_waitpoints
        stmt = (
            select(w)
            .join(rw, rw.c.waitpoint_id == w.c.id)
            .where(rw.c.run_id == run_id, w.c.status == WAITING)
            .order_by(w.c.created_at, w.c.id)
        )
        with self._seam.read() as conn:
            return [Waitpoint.from_row(row) for row in conn.execute(stmt)]

    def list_waitpoints(
        self,
        environment_id: str,
        kind: str,
        *,
        statuses: Sequence[str] = (),
        tag: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Waitpoint], str | None]:
        """Newest first, a page and the cursor of the next one (``None`` at the end)."""
        w = t.waitpoints
        stmt = select(w).where(w.c.environment_id == environment_id, w.c.kind == kind)
        if statuses:
            stmt = stmt.where(w.c.status.in_(list(statuses)))
        if tag:
            stmt = stmt.where(self._seam.contains(w.c.tags, json.dumps(tag, ensure_ascii=False)))
        with self._seam.read() as conn:
            return newest_first(conn, stmt, w, Waitpoint.from_row, limit, cursor)


def _holds(row: Any, item: Suspension) -> bool:
    """Whether ``row`` (the run, as locked) is still executing the item's attempt for its worker."""
    return (
        row is not None
        and row.status == RunStatus.EXECUTING.value
        and row.attempt_count == item.attempt
        and row.worker_id == item.worker_id
        and (item.execution is None or row.executions == item.execution)
    )


def _re_records(item: Suspension, recorded: dict[tuple[str, str], Any]) -> bool:
    """A timer position that is already recorded (by another execution), or a position waited on
    that is not recorded at all: the item is stale."""
    new = {entry.seq for entry, _ in item.timers}
    if any((item.run_id, seq) in recorded for seq in new):
        return True
    return any((item.run_id, seq) not in recorded and seq not in new for seq in item.waiting_on)


def _waitpoint_values(wp: Waitpoint) -> dict[str, Any]:
    return {
        "id": wp.id,
        "environment_id": wp.environment_id,
        "kind": wp.kind,
        "status": wp.status,
        "run_id": wp.run_id,
        "owner_run_id": wp.owner_run_id,
        "resume_at": wp.resume_at,
        "timeout_at": wp.timeout_at,
        "output": None if wp.output is None else dumps(wp.output),
        "tags": dumps(wp.tags),
        "idempotency_key": wp.idempotency_key,
        "idempotency_key_expires_at": wp.idempotency_key_expires_at,
        "created_at": wp.created_at,
        "completed_at": wp.completed_at,
    }
