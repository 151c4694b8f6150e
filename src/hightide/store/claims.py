"""``store.claims``: claiming work, leases and the runs whose time has come."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, bindparam, case, delete, func, insert, or_, select, update

from hightide.core.states import RunEvent, RunStatus, transition
from hightide.errors import ServerError
from hightide.store import schema as t
from hightide.store.changes import Change, ChangeKind
from hightide.store.rates import PRUNE_EVERY, read_windows, record_starts
from hightide.store.records import Run
from hightide.store.seam import Seam
from hightide.store.turns import Candidate, Groups, keyed_turns, turns_in_prefix

# How long a claim id is remembered at least (and a lease's tenfold when longer): a retried claim
# gets what its first try took, and a claim given up on takes nothing, within this time.
CLAIM_MEMORY_SECONDS = 3600.0
# Ids per IN (...) list: well under SQLite's limit on a statement's variables, whatever its build.
_SLICE = 500


def _slices(ids: Sequence[str]) -> list[Sequence[str]]:
    return [ids[i : i + _SLICE] for i in range(0, len(ids), _SLICE)]


class ClaimOps:
    def __init__(self, seam: Seam) -> None:
        self._seam = seam
        self._claims_pruned_at = 0.0  # when this process last deleted the claim ids it need not remember
        self._starts_pruned_at: dict[str, float] = {}  # per environment: rate windows' old starts

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
        claim_id: str | None = None,
        last: bool = True,
    ) -> list[Run]:
        """Move up to ``limit`` ready runs of ``task_ids`` to EXECUTING for ``worker_id``, respecting
        the environment's and each queue's concurrency limit and rate limit, and open an attempt
        for each.

        ``claim_id`` (chosen by the worker, the same for each try of one claim) makes the claim
        exactly-once: a claim id that already took runs gets those runs again (those it still
        holds), one that was released (``release_runs``) gets nothing, whatever the server.

        ``last``: this is the claim's last look (a long-poll's is at its deadline). A claim id that
        takes nothing then is recorded closed, as a release would: the worker moves on once answered,
        so an earlier try of the same claim still on its way (long-polling on another server for a
        worker that hung up) must take nothing either."""
        if claim_id is None and (limit <= 0 or not task_ids):
            return []
        with self._seam.write_notify() as conn:
            self._seam.lock_for_claim(conn, environment_id)
            if claim_id is not None:
                seen = conn.execute(
                    select(t.claims).where(t.claims.c.environment_id == environment_id, t.claims.c.id == claim_id)
                ).first()
                if seen is not None:
                    return self._claimed_before(conn, seen, environment_id, worker_id, now + lease_seconds)
            claimed = self._claim_ready(
                conn, environment_id, task_ids, worker_id, version, limit, lease_seconds, now, claim_id
            )
            # Live views follow runs as they start (the long-polls of claimers ignore these: see notify.py).
            self._seam.publish(conn, *(Change(environment_id, run.id, run.status) for run in claimed))
            if claim_id is not None and (claimed or last):
                conn.execute(
                    insert(t.claims).values(
                        id=claim_id,
                        environment_id=environment_id,
                        worker_id=worker_id,
                        created_at=now,
                        released_at=None if claimed else now,
                    )
                )
                self._forget_old_claims(conn, now - max(CLAIM_MEMORY_SECONDS, 10 * lease_seconds), now)
            return claimed

    def _claim_ready(
        self,
        conn: Connection,
        environment_id: str,
        task_ids: Sequence[str],
        worker_id: str,
        version: str,
        limit: int,
        lease_seconds: float,
        now: float,
        claim_id: str | None,
    ) -> list[Run]:
        """The claim itself, under the claim lock: up to ``limit`` ready runs started for ``worker_id``.

        Runs are counted against limits in groups: a queue's runs without a concurrency key are one
        group, and in a queue with a limit each key value is a group of its own, with its own copy of
        the limit. Keyed runs take turns (``store.turns``); the others go by rank, as ever. A
        rate-limited queue's runs start only while their window has room (``store.rates``)."""
        r, q = t.runs, t.queues
        if limit <= 0 or not task_ids:
            return []
        env_limit = conn.execute(
            select(t.environments.c.concurrency_limit).where(t.environments.c.id == environment_id)
        ).scalar_one()
        # Per queue, its runs executing without a key (or without a limit, where keys change nothing).
        executing: dict[str, int] = {}
        total = 0
        queue_rows = conn.execute(select(q).where(q.c.environment_id == environment_id)).all()
        prune = now - self._starts_pruned_at.get(environment_id, 0.0) >= PRUNE_EVERY
        windows = read_windows(conn, environment_id, queue_rows, now, prune)
        if prune and windows.limits:
            self._starts_pruned_at[environment_id] = now
        full_windows = windows.full_queues()  # nothing of theirs starts: as if paused, for this claim
        limits = {  # a user's override wins over the limit the tasks declare
            row.name: (
                row.concurrency_limit if row.concurrency_limit_override is None else row.concurrency_limit_override,
                row.paused or row.name in full_windows,
            )
            for row in queue_rows
        }
        # Per (queue, key) of a queue with a limit, its keyed runs executing (kept up to date below).
        busy: dict[tuple[str, str], int] = {}
        for queue, key, count in conn.execute(
            select(r.c.queue, r.c.concurrency_key, func.count())
            .where(r.c.environment_id == environment_id, r.c.status == RunStatus.EXECUTING.value)
            .group_by(r.c.queue, r.c.concurrency_key)
        ).all():
            total += count
            if key is None or limits.get(queue, (None, False))[0] is None:
                executing[queue] = executing.get(queue, 0) + count
            else:
                busy[(queue, key)] = count
        free_env = env_limit - total
        if free_env <= 0:
            return []
        want = min(limit, free_env)
        # Queues whose keyed runs are claimed by turns: not paused, with a limit above 0 (or none
        # and a rate limit per key).
        keyed_queues = sorted(
            name
            for name, (queue_limit, paused) in limits.items()
            if not paused and (queue_limit or (queue_limit is None and windows.per_key(name)))
        )
        # Runs of a paused or full queue are left out in SQL: however many of them wait ahead,
        # they must not hide the runs of other queues. A queue that fills up mid-batch is left
        # out of the next round. For a keyed queue, "full" is of its runs without a key only.
        blocked = {
            name
            for name, (queue_limit, paused) in limits.items()
            if paused or (queue_limit is not None and executing.get(name, 0) >= queue_limit)
        }
        claimed: list[Run] = []
        started: list[tuple[str, str | None]] = []  # (queue, key) of each run claimed
        while len(claimed) < want:
            left = want - len(claimed)
            # `available_at + 0`: keeps the planner on ix_runs_claim (already in claim order)
            # instead of sorting every ready run by the available_at index on each claim.
            ready = select(r).where(
                r.c.environment_id == environment_id,
                r.c.status == RunStatus.QUEUED.value,
                (r.c.available_at + 0) <= now,
                r.c.task_id.in_(task_ids),
            )
            candidates: list[Candidate] | None
            if keyed_queues:
                groups = Groups(limits, keyed_queues, executing, busy, windows)
                candidates, everything = turns_in_prefix(conn, self._seam, ready, groups, blocked, left)
                if candidates is None:  # the next runs may lie beyond the first ones: all turns
                    keyed, saw_all = keyed_turns(conn, self._seam, environment_id, ready, groups, left)
                    plain = self._plain_candidates(ready, conn, blocked, keyed_queues, left)
                    everything = saw_all and len(plain) < left
                    candidates = sorted(keyed + plain, key=lambda c: c[:3])
            else:
                candidates = self._plain_candidates(ready, conn, blocked, keyed_queues, left)
                everything = False  # as before keys: look again until a round takes nothing
            taken: list[Any] = []
            for _, _, _, row in candidates:
                if len(taken) >= left:
                    break
                queue = row._mapping["queue"]
                key = row._mapping["concurrency_key"]
                room = windows.left(queue, key)
                if room is not None and room <= 0:
                    continue  # its rate window filled up in this claim
                if key is not None and queue in keyed_queues:
                    taken.append(row)  # its turn was within its key's limit
                    busy[(queue, key)] = busy.get((queue, key), 0) + 1
                elif queue in blocked:
                    continue
                else:
                    taken.append(row)
                    executing[queue] = executing.get(queue, 0) + 1
                    queue_limit, _ = limits.get(queue, (None, False))
                    if queue_limit is not None and executing[queue] >= queue_limit:
                        blocked.add(queue)
                windows.take(queue, key, now)
                started.append((queue, key))
                if room == 1:  # this start filled its window
                    if not windows.per_key(queue):  # the queue's one: nothing of it starts now
                        limits[queue] = (limits[queue][0], True)
                        keyed_queues = [name for name in keyed_queues if name != queue]
                        blocked.add(queue)
                    elif key is None:  # the window of its runs without a key
                        blocked.add(queue)
            if not taken:
                break  # nothing left that may start
            claimed.extend(self._start_attempts(conn, taken, worker_id, version, now + lease_seconds, now, claim_id))
            if everything:
                break  # this round saw every run that could start: another would read them again
        record_starts(conn, environment_id, windows, started, now)
        return claimed

    def _plain_candidates(
        self, ready: Any, conn: Connection, blocked: set[str], keyed_queues: Sequence[str], left: int
    ) -> list[Candidate]:
        """The first ``left`` ready runs that are not keyed runs of ``keyed_queues``, in rank order,
        locked; each run's turn is 1."""
        r = t.runs
        plain = ready
        if blocked:
            plain = plain.where(r.c.queue.not_in(sorted(blocked)))
        if keyed_queues:
            plain = plain.where(or_(r.c.concurrency_key.is_(None), r.c.queue.not_in(keyed_queues)))
        rows = conn.execute(self._seam.claim_select(plain.order_by(r.c.rank_at, r.c.id).limit(left))).all()
        return [(1, row._mapping["rank_at"], row._mapping["id"], row) for row in rows]

    @staticmethod
    def _claimed_before(
        conn: Connection, seen: Any, environment_id: str, worker_id: str, lease_until: float
    ) -> list[Run]:
        """A claim id seen before: the runs it took that its worker still holds (their leases
        extended: the worker gets them only now), unless it was released or is another worker's."""
        if seen.released_at is not None or seen.worker_id != worker_id:
            return []
        r = t.runs
        held = (
            r.c.environment_id == environment_id,
            r.c.status == RunStatus.EXECUTING.value,
            r.c.claim_id == seen.id,
            r.c.worker_id == worker_id,
        )
        longer = case((r.c.lease_expires_at > lease_until, r.c.lease_expires_at), else_=lease_until)
        conn.execute(update(r).where(*held).values(lease_expires_at=longer))
        rows = conn.execute(select(r).where(*held).order_by(r.c.rank_at, r.c.id)).all()
        return [Run.from_row(row) for row in rows]

    def _forget_old_claims(self, conn: Connection, before: float, now: float) -> None:
        """Delete claim ids older than ``before``, at most once a minute per process."""
        if now - self._claims_pruned_at < 60:
            return
        self._claims_pruned_at = now
        conn.execute(delete(t.claims).where(t.claims.c.created_at < before))

    def _start_attempts(
        self,
        conn: Connection,
        rows: Sequence[Any],
        worker_id: str,
        version: str,
        lease_until: float,
        now: float,
        claim_id: str | None = None,
    ) -> list[Run]:
        """QUEUED → EXECUTING for rows read under the claim lock (so the conditional update matches
        every one of them), and an attempt record each. One UPDATE and one INSERT for the batch. A
        resumed run (``resuming``) continues its attempt: same number, the attempt record reopened."""
        r = t.runs
        target = transition(RunStatus.QUEUED, RunEvent.START)
        ids = [row._mapping["id"] for row in rows]
        updated = conn.execute(
            update(r)
            .where(r.c.id.in_(ids), r.c.status == RunStatus.QUEUED.value)
            .values(
                status=target.value,
                attempt_count=r.c.attempt_count + case((r.c.resuming, 0), else_=1),
                resuming=False,
                executions=r.c.executions + 1,
                worker_id=worker_id,
                version=version,
                lease_expires_at=lease_until,
                started_at=func.coalesce(r.c.started_at, now),
                updated_at=now,
                claim_id=claim_id,
            )
        ).rowcount
        if updated != len(ids):  # cannot happen under the lock; refuse rather than double-run
            raise ServerError(f"claim lost {len(ids) - updated} run(s) it had locked; rolled back")
        runs: list[Run] = []
        resumed: set[str] = set()
        for row in rows:
            run = Run.from_row(row)
            resuming = bool(row._mapping["resuming"])
            if resuming:
                resumed.add(run.id)
            runs.append(
                replace(
                    run,
                    status=target,
                    attempt_count=run.attempt_count + (0 if resuming else 1),
                    executions=run.executions + 1,
                    worker_id=worker_id,
                    version=version,
                    lease_expires_at=lease_until,
                    started_at=run.started_at or now,
                    updated_at=now,
                )
            )
        fresh = [
            {
                "run_id": run.id,
                "number": run.attempt_count,
                "status": target.value,
                "worker_id": worker_id,
                "version": version,
                "started_at": now,
            }
            for run in runs
            if run.id not in resumed
        ]
        if fresh:
            conn.execute(insert(t.attempts), fresh)
        if resumed:  # one statement for the batch, as `suspend_runs` closes them
            a = t.attempts
            conn.execute(
                update(a)
                .where(a.c.run_id == bindparam("r"), a.c.number == bindparam("n"))
                .values(status=target.value, worker_id=worker_id, version=version),
                [{"r": run.id, "n": run.attempt_count} for run in runs if run.id in resumed],
            )
        return runs

    def has_ready_runs(self, environment_id: str, task_ids: Sequence[str], now: float) -> bool:
        """Whether any run of ``task_ids`` is ready to claim: a cheap read that spares a write
        transaction when a long-poll wakes for a change that brought no work."""
        r = t.runs
        with self._seam.read() as conn:
            row = conn.execute(
                select(r.c.id)
                .where(
                    r.c.environment_id == environment_id,
                    r.c.status == RunStatus.QUEUED.value,
                    (r.c.available_at + 0) <= now,
                    r.c.task_id.in_(task_ids),
                )
                .limit(1)
            ).first()
        return row is not None

    def extend_leases(
        self, worker_id: str, held: Sequence[tuple[str, int]], lease_until: float, now: float
    ) -> list[str]:
        """Extend the leases of runs ``worker_id`` still holds; return the ids it no longer holds.
        A few statements whatever the number of runs: their rows read (locked) and updated in
        slices of ``_SLICE`` ids."""
        if not held:
            return []
        r = t.runs
        attempts = dict(held)
        kept: set[str] = set()
        with self._seam.write() as conn:
            for ids in _slices(sorted(attempts)):
                rows = conn.execute(
                    select(r.c.id, r.c.attempt_count)
                    .where(r.c.id.in_(ids), r.c.status == RunStatus.EXECUTING.value, r.c.worker_id == worker_id)
                    .order_by(r.c.id)
                    .with_for_update()
                ).all()
                mine = [row.id for row in rows if row.attempt_count == attempts[row.id]]
                if mine:
                    conn.execute(update(r).where(r.c.id.in_(mine)).values(lease_expires_at=lease_until))
                    kept.update(mine)
        return [run_id for run_id, _ in held if run_id not in kept]

    def runs_not_held(self, worker_id: str, held: Sequence[tuple[str, int]]) -> list[str]:
        """Of ``held``, the runs that are no longer executing that attempt for ``worker_id``."""
        if not held:
            return []
        r = t.runs
        attempts = dict(held)
        kept: set[str] = set()
        with self._seam.read() as conn:
            for ids in _slices(sorted(attempts)):
                rows = conn.execute(
                    select(r.c.id, r.c.attempt_count).where(
                        r.c.id.in_(ids), r.c.status == RunStatus.EXECUTING.value, r.c.worker_id == worker_id
                    )
                ).all()
                kept.update(row.id for row in rows if row.attempt_count == attempts[row.id])
        return [run_id for run_id, _ in held if run_id not in kept]

    def due_runs(self, now: float, limit: int = 500) -> dict[str, list[Run]]:
        """Runs whose time has come: ``delayed`` (delay passed), ``expired`` (queued or waiting for a
        version, ttl passed, never started) and ``lease_expired`` (EXECUTING with a lapsed lease)."""
        r = t.runs
        with self._seam.read() as conn:
            delayed = conn.execute(
                select(r).where(r.c.status == RunStatus.DELAYED.value, r.c.available_at <= now).limit(limit)
            ).all()
            expired = conn.execute(  # not DELAYED: a run's ttl starts when it is queued
                select(r)
                .where(
                    r.c.status.in_([RunStatus.QUEUED.value, RunStatus.PENDING_VERSION.value]),
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
        """The earliest time at which a run becomes due: a delay or retry backoff ends, a ttl or a
        lease runs out, a timer fires, a token times out or a full rate window frees. A backoff or a
        rate window counts only if it ends after ``now`` (the scheduler passes its last pass: one
        that ended since is still to be announced)."""
        r, w, q = t.runs, t.waitpoints, t.queues
        # The same statuses `due_runs` expires: a ttl that ends must wake the scheduler.
        waiting = [RunStatus.PENDING_VERSION.value, RunStatus.QUEUED.value]
        earliest = [  # one statement: the scheduler asks after every pass
            select(func.min(r.c.available_at)).where(r.c.status == RunStatus.DELAYED.value),
            # Queued runs that became available after they were made (backoffs, schedules' runs
            # made ahead), not runs available since their trigger: those need no announcing.
            select(func.min(r.c.available_at)).where(
                r.c.status == RunStatus.QUEUED.value, r.c.available_at > now, r.c.available_at > r.c.created_at
            ),
            select(func.min(r.c.ttl_expires_at)).where(r.c.status.in_(waiting), r.c.started_at.is_(None)),
            select(func.min(r.c.lease_expires_at)).where(r.c.status == RunStatus.EXECUTING.value),
            select(func.min(w.c.resume_at)).where(w.c.status == "WAITING"),
            select(func.min(w.c.timeout_at)).where(w.c.status == "WAITING"),
            select(func.min(q.c.rate_free_at)).where(q.c.rate_free_at > now),
        ]
        with self._seam.read() as conn:
            times = conn.execute(select(*(q.scalar_subquery() for q in earliest))).one()
        present = [x for x in times if x is not None]
        return min(present) if present else None

    def announce_ready(self, since: float, now: float) -> None:
        """Wake the claimers of environments whose queued runs became available in (since, now]:
        retry backoffs that ended, and full rate windows that freed."""
        r, q = t.runs, t.queues
        with self._seam.read() as conn:
            rows = conn.execute(
                select(r.c.environment_id)
                .where(r.c.status == RunStatus.QUEUED.value, r.c.available_at > since, r.c.available_at <= now)
                .union(select(q.c.environment_id).where(q.c.rate_free_at > since, q.c.rate_free_at <= now))
            ).all()
        # In this process only: every server's scheduler makes this pass itself.
        self._seam.dispatch([Change(row.environment_id, kind=ChangeKind.READY) for row in rows])
