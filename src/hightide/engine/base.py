"""``EngineCore``: what every engine service shares (the store, settings, clock, wake-ups) and the one
way to change a run: ``transition`` decides, the store's conditional update applies (or refuses a
stale request)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hightide.core.failures import Failure, FailureKind
from hightide.core.retry import RetryDecision, RetryPolicy, decide_failure
from hightide.core.states import FINAL_STATUSES, RunEvent, RunStatus, transition
from hightide.engine.notify import Notifier, cancel_key
from hightide.errors import ConflictError, NotFoundError, ValidationError
from hightide.store import Store
from hightide.store.records import (
    Attempt,
    Environment,
    Run,
    RunChange,
    RunFilter,
)

Clock = Callable[[], float]
DEFAULT_RETENTION = 30 * 86400.0
HOOKS_LEASE = 60.0
"""Seconds a worker holds the final hooks it runs (``store.hooks``): after that, another takes them."""
HOOKS_OWED_BY = frozenset({RunEvent.CRASH, RunEvent.TIME_OUT})
"""Final failures whose hooks did not run in the task's runner: a fresh one runs them."""


@dataclass(frozen=True)
class EngineSettings:
    max_payload_bytes: int = 3 * 1024 * 1024
    lease_seconds: float = 30.0
    claim_poll_interval: float = 1.0  # long-polls re-check this often even without a wake-up
    retention: float | None = DEFAULT_RETENTION  # seconds finished runs are kept; None: for ever


class Due:
    """The signal "something becomes due at ``at`` (or at an unknown time)", raised from any thread
    by the services that create timed work and heard by the scheduler, which then looks earlier
    than it planned to."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[float | None], None]] = []

    def subscribe(self, listener: Callable[[float | None], None]) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[float | None], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def __call__(self, at: float | None = None) -> None:
        for listener in list(self._listeners):
            listener(at)


def run_not_found(env: Environment, run_id: str) -> NotFoundError:
    return NotFoundError(f"run {run_id!r} not found in environment {env.slug!r}", details={"run": run_id})


class EngineCore:
    """The store, settings and clock every service uses, the long-poll wake-ups, reading runs, and
    the one way to change a run."""

    def __init__(self, store: Store, settings: EngineSettings | None = None, clock: Clock = time.time) -> None:
        self.store = store
        self.settings = settings or EngineSettings()
        self.clock = clock
        self.notifier: Notifier | None = None
        self.due = Due()
        self.closing = False
        """Set when the server shuts down: long-polls answer at once."""
        self._rng = random.Random()

    def attach(self, loop: asyncio.AbstractEventLoop) -> Notifier:
        """Route the store's change events to long-polls running on ``loop``."""
        self.notifier = Notifier(loop)
        self.store.add_listener(self.notifier.changed)
        return self.notifier

    def stop_polling(self) -> None:
        """End long-polls now (server shutdown), so that connections can close at once."""
        self.closing = True
        if self.notifier is not None:
            self.notifier.wake_all()

    def detach(self) -> None:
        if self.notifier is not None:
            self.store.remove_listener(self.notifier.changed)
            self.notifier = None

    def generation(self, key: str) -> int:
        """The wake-up generation of ``key``, read before a look (see ``Notifier``)."""
        return self.notifier.generation(key) if self.notifier else 0

    async def sleep_until_change(self, key: str, gen: int, timeout: float) -> None:
        if self.notifier is None:
            await asyncio.sleep(timeout)
        else:
            await self.notifier.wait(key, gen, timeout)

    # -- reading -----------------------------------------------------------------------------
    def get_run(self, env: Environment, run_id: str) -> Run:
        run = self.store.runs.get_run(run_id, env.id)
        if run is None:
            raise run_not_found(env, run_id)
        return run

    def list_runs(
        self, env: Environment, flt: RunFilter, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Run], str | None]:
        if not 1 <= limit <= 1000:
            raise ValidationError("limit: expected 1 to 1000", details={"field": "limit"})
        bad = [s for s in flt.statuses if s not in RunStatus.__members__]
        if bad:
            raise ValidationError(
                f"status: unknown status(es) {bad}; expected some of {list(RunStatus.__members__)}",
                details={"field": "status"},
            )
        return self.store.runs.list_runs(env.id, flt, limit, cursor)

    def children(self, run: Run, limit: int) -> tuple[list[Run], bool]:
        """The first ``limit`` runs ``run`` triggered, oldest first, and whether there are more."""
        return self.store.runs.children_of(run.environment_id, run.id, limit)

    def attempts(self, run: Run) -> list[Attempt]:
        return self.store.runs.list_attempts(run.id)

    # -- the one way to change a run -----------------------------------------------------------
    def change(
        self,
        run: Run,
        event: RunEvent,
        values: dict[str, Any] | None = None,
        *,
        now: float,
        attempt: int | None = None,
        attempt_values: dict[str, Any] | None = None,
        lease_lapsed_by: float | None = None,
    ) -> RunChange:
        """The conditional update that moves ``run`` (as read) by ``event``: ``transition`` decides
        the status, and the update applies only if the run is still as read."""
        target = transition(run.status, event)
        full = {"status": target.value, **(values or {})}
        if target in FINAL_STATUSES:
            full.setdefault("finished_at", now)
            full.setdefault("lease_expires_at", None)
        return RunChange(run.id, run.status.value, attempt, full, attempt_values, lease_lapsed_by)

    def apply(
        self,
        run: Run,
        event: RunEvent,
        values: dict[str, Any] | None = None,
        *,
        attempt: int | None = None,
        attempt_values: dict[str, Any] | None = None,
        lease_lapsed_by: float | None = None,
    ) -> Run:
        """Move ``run`` by ``event`` if it is still as we read it; else raise ``ConflictError``."""
        now = self.clock()
        change = self.change(
            run, event, values, now=now, attempt=attempt, attempt_values=attempt_values, lease_lapsed_by=lease_lapsed_by
        )
        return self.commit(change, event.value, now)

    def commit(self, change: RunChange, what: str, now: float) -> Run:
        updated = self.store.runs.apply_change(change, now)
        if updated is None:
            current = self.store.runs.get_run(change.run_id)
            state = current.status.value if current else "gone"
            raise ConflictError(
                f"run {change.run_id} changed while handling {what!r} (it is now {state}); request ignored",
                details={"run": change.run_id, "status": state},
            )
        return updated

    def failure_change(
        self,
        run: Run,
        failure: Failure,
        now: float,
        lease_lapsed_by: float | None = None,
        override: RetryDecision | None = None,
    ) -> tuple[RunChange, bool]:
        """The change for a failed attempt of ``run``, and whether it schedules another attempt
        (``override``: the task's ``catch_error`` decision, sent with the result)."""
        policy = RetryPolicy.from_dict(run.retry)
        retry_machine = policy.retry_machine(run.machine) if failure.kind == FailureKind.OUT_OF_MEMORY else None
        decision = decide_failure(
            failure.kind,
            run.attempt_count,
            run.max_attempts,
            policy,
            self._rng,
            override=override,
            now=now,
            retry_machine=retry_machine,
        )
        attempt_values = {"status": "FAILED", "finished_at": now, "error": failure.to_dict()}
        if decision.retry:
            values = {
                "error": failure.to_dict(),
                "available_at": now + decision.delay,
                "lease_expires_at": None,
                "worker_id": None,
            }
            if retry_machine is not None:  # the next attempt gets the bigger machine (and keeps it)
                values["machine"] = retry_machine
            event = RunEvent.RETRY
        else:
            # A failed run releases its idempotency key, so that the same key can try again.
            values = {"error": failure.to_dict(), "idempotency_key": None}
            event = RunEvent(decision.final_event)
            if event in HOOKS_OWED_BY:
                # Owed to any worker at once when the run's worker is gone (its lease lapsed); else
                # the worker that reports it runs them, and another does if it has not within a minute.
                values["hooks_owed_until"] = now if lease_lapsed_by is not None else now + HOOKS_LEASE
        change = self.change(
            run,
            event,
            values,
            now=now,
            attempt=run.attempt_count,
            attempt_values=attempt_values,
            lease_lapsed_by=lease_lapsed_by,
        )
        return change, decision.retry

    def fail(self, run: Run, failure: Failure, lease_lapsed_by: float | None = None) -> Run:
        """Fail ``run``'s current attempt: retried after its backoff, or final."""
        now = self.clock()
        change, retry = self.failure_change(run, failure, now, lease_lapsed_by)
        updated = self.commit(change, "fail", now)
        if retry:
            self.due()
        return updated


__all__ = ["HOOKS_LEASE", "Clock", "Due", "EngineCore", "EngineSettings", "cancel_key"]
