"""Cancel, replay, reschedule, and the time-driven changes the scheduler applies."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from enum import Enum
from typing import Any

from hightide.core.failures import Failure, FailureKind
from hightide.core.states import RunEvent, RunStatus
from hightide.engine.base import EngineCore, run_not_found
from hightide.engine.options import TriggerSpec, parse_delay
from hightide.engine.triggering import Triggering
from hightide.errors import ConflictError, HightideError, ValidationError
from hightide.store.records import Environment, Run, RunChange
from hightide.types import JSON

DUE_BATCH = 200
"""Due changes applied per transaction: short row locks, few commits."""


class _Same(Enum):
    PAYLOAD = "the replayed run's payload"


SAME_PAYLOAD = _Same.PAYLOAD
"""``replay``'s default: the payload of the run replayed (``None`` is a payload, JSON's null)."""


def _already_finished(run: Run) -> ConflictError:
    return ConflictError(
        f"run {run.id} is already {run.status.value}; only unfinished runs can be cancelled",
        details={"run": run.id, "status": run.status.value},
    )


class Control:
    """What users do to runs (cancel, replay, reschedule) and the time-driven changes the
    scheduler applies."""

    def __init__(self, core: EngineCore, triggering: Triggering) -> None:
        self.core = core
        self.store = core.store
        self.triggering = triggering

    def cancel(self, env: Environment, run_id: str) -> Run:
        """Cancel a run that has not finished, and its unfinished children."""
        for _ in range(3):  # a run that moved meanwhile (claimed, suspended, resumed) is read again
            run = self.core.get_run(env, run_id)
            if run.status.is_final:
                raise _already_finished(run)
            now = self.core.clock()
            try:
                cancelled = self.core.commit(self._cancel_change(run, now), RunEvent.CANCEL.value, now)
                break
            except ConflictError:
                continue
        else:
            raise ConflictError(f"run {run_id} kept changing while it was being cancelled; try again")
        self._after_cancel(env, [run], now)
        # The worker of an executing run hears of it in its heartbeat long-poll, on whichever server
        # that waits: the store publishes the cancel as a CANCEL_REQUESTED change.
        return cancelled

    def cancel_many(self, env: Environment, run_ids: Sequence[str]) -> dict[str, HightideError | None]:
        """``cancel`` for many runs (a bulk action's page), read in one query and cancelled in one
        transaction: per run, ``None`` when it was cancelled, else why not (a ``ConflictError``:
        it had already finished). A run that moved between the read and the update is cancelled
        again alone."""
        found = self.store.runs.get_runs(run_ids, env.id)
        outcomes: dict[str, HightideError | None] = {}
        now = self.core.clock()
        runs: list[Run] = []
        for run_id in dict.fromkeys(run_ids):
            run = found.get(run_id)
            if run is None:
                outcomes[run_id] = run_not_found(env, run_id)
            elif run.status.is_final:
                outcomes[run_id] = _already_finished(run)
            else:
                runs.append(run)
        changes = [self._cancel_change(run, now) for run in runs]
        applied = self.store.runs.update_runs(env.id, changes, now) if changes else []
        done = [run for run, ok in zip(runs, applied, strict=True) if ok]
        self._after_cancel(env, done, now)
        outcomes.update(dict.fromkeys((run.id for run in done), None))
        for run, ok in zip(runs, applied, strict=True):
            if not ok:
                try:
                    self.cancel(env, run.id)
                    outcomes[run.id] = None
                except HightideError as exc:
                    outcomes[run.id] = exc
        return {run_id: outcomes[run_id] for run_id in dict.fromkeys(run_ids)}

    def _cancel_change(self, run: Run, now: float) -> RunChange:
        started = run.status in (RunStatus.EXECUTING, RunStatus.WAITING)  # an attempt is open
        return self.core.change(
            run,
            RunEvent.CANCEL,
            {"lease_expires_at": None, "idempotency_key": None},
            now=now,
            attempt=run.attempt_count if started else None,
            attempt_values={"status": RunStatus.CANCELED.value, "finished_at": now} if started else None,
        )

    def _after_cancel(self, env: Environment, runs: Sequence[Run], now: float) -> None:
        """After ``runs`` (as read before) were cancelled: close the attempts a release left open,
        and cancel their unfinished children."""
        for run in runs:
            if run.status not in (RunStatus.EXECUTING, RunStatus.WAITING) and run.attempt_count:
                self.store.releases.close_released_attempt(run.id, run.attempt_count, RunStatus.CANCELED.value, now)
        if runs:
            active = [s.value for s in RunStatus if not s.is_final]
            children = self.store.runs.child_run_ids([run.id for run in runs], active)
            if children:
                self.cancel_many(env, children)  # those that finished meanwhile stay as they are

    def replay(self, env: Environment, run_id: str, payload: JSON | _Same = SAME_PAYLOAD) -> Run:
        """A new run of the same task with the same tags and metadata, on the current version: with
        the same payload, or ``payload`` (checked as any trigger's, against the task's schema)."""
        run = self.core.get_run(env, run_id)
        given = run.payload if isinstance(payload, _Same) else payload
        spec = TriggerSpec(task_id=run.task_id, payload=given, tags=tuple(run.tags), metadata=run.metadata)
        return self.triggering.trigger(env, [spec])[0][0]

    def reschedule(self, env: Environment, run_id: str, delay: Any) -> Run:
        run = self.core.get_run(env, run_id)
        if run.status != RunStatus.DELAYED:
            raise ConflictError(
                f"run {run_id} is {run.status.value}; only DELAYED runs can be rescheduled",
                details={"run": run_id, "status": run.status.value},
            )
        if delay is None:
            raise ValidationError("delay: required, e.g. '1h' or an ISO 8601 date-time", details={"field": "delay"})
        until = parse_delay(delay, self.core.clock())
        assert until is not None
        values: dict[str, Any] = {"delay_until": until, "available_at": until}
        ttl = delayed_ttl(run)
        if ttl is not None:  # the ttl still counts from when the run is queued
            values["ttl_expires_at"] = until + ttl
        rescheduled = self.core.apply(run, RunEvent.RESCHEDULE, values)
        self.core.due(until)
        return rescheduled

    # -- time-driven changes (called by the scheduler service) ---------------------------------
    def process_due(self) -> int:
        """Enqueue delayed runs whose time came, expire runs past their ttl, fail attempts whose
        lease lapsed (their worker died), fire timers and time out tokens (queuing the runs waiting
        on them). Returns how many runs and waitpoints changed."""
        now = self.core.clock()
        due = self.store.claims.due_runs(now)
        changed = self.store.waitpoints.resolve_due_waitpoints(now)
        # Each change re-checks, under the run's lock, that its time came: another server's
        # scheduler doing the same, or a request (reschedule, claim, heartbeat) in between, makes it
        # a silent no-op.
        changes: list[tuple[str, RunChange]] = []
        for run in due["expired"]:
            change = self.core.change(run, RunEvent.EXPIRE, {"idempotency_key": None}, now=now)
            changes.append((run.environment_id, replace(change, ttl_ended_by=now)))
        for run in due["delayed"]:
            values: dict[str, Any] = {"delay_until": None}
            ttl = delayed_ttl(run)
            if ttl is not None:  # the ttl starts now, even if this pass comes late
                values["ttl_expires_at"] = now + ttl
            change = self.core.change(run, RunEvent.ENQUEUE, values, now=now)
            changes.append((run.environment_id, replace(change, delay_ended_by=now)))
        retries = False
        for run in due["lease_expired"]:
            failure = Failure(
                name="WorkerLost",
                message=f"the worker {run.worker_id} stopped heartbeating and its lease on attempt "
                f"{run.attempt_count} expired",
                kind=FailureKind.CRASH,
            )
            change, retry = self.core.failure_change(run, failure, now, lease_lapsed_by=now)
            changes.append((run.environment_id, change))
            retries = retries or retry
        changed += self._apply_due(changes, now)
        if retries:
            self.core.due()
        return changed

    def _apply_due(self, changes: list[tuple[str, RunChange]], now: float) -> int:
        """Apply ``changes`` per environment, a batch per transaction (its runs locked in id order,
        so that two schedulers racing on them never deadlock: the second finds them changed)."""
        by_env: dict[str, list[RunChange]] = {}
        for environment_id, change in changes:
            by_env.setdefault(environment_id, []).append(change)
        applied = 0
        for environment_id, env_changes in by_env.items():
            for start in range(0, len(env_changes), DUE_BATCH):
                batch = env_changes[start : start + DUE_BATCH]
                applied += sum(self.store.runs.update_runs(environment_id, batch, now))
        return applied

    def next_due_in(self, cap: float) -> float:
        now = self.core.clock()
        nxt = self.next_due_at(now)
        return cap if nxt is None else max(0.0, min(cap, nxt - now))

    def next_due_at(self, after: float) -> float | None:
        """When ``process_due`` next has work (or ``announce_ready`` has runs that became available
        after ``after``); ``None``: nothing is waiting on a time."""
        return self.store.claims.next_due_time(after)


def delayed_ttl(run: Run) -> float | None:
    """The ttl of a delayed run, in seconds: its expiry is kept as ``delay_until + ttl`` until it is
    queued (when the ttl starts counting)."""
    if run.ttl_expires_at is None or run.delay_until is None:
        return None
    return max(0.0, run.ttl_expires_at - run.delay_until)
