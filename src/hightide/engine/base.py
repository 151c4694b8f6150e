"""The engine's shared state and the one way to change a run: ``transition`` decides, the store's
conditional update applies (or refuses a stale request)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hightide.core.failures import Failure
from hightide.core.retry import RetryPolicy, decide_failure
from hightide.core.states import FINAL_STATUSES, RunEvent, RunStatus, transition
from hightide.engine.notify import Notifier, cancel_key
from hightide.errors import ConflictError, NotFoundError, ValidationError
from hightide.store import Store
from hightide.store.changes import Change, ChangeKind
from hightide.store.records import (
    Attempt,
    Environment,
    Run,
    RunChange,
    RunFilter,
    TaskDefinition,
    Version,
)

Clock = Callable[[], float]
TASK_CACHE_SECONDS = 2.0


@dataclass(frozen=True)
class EngineSettings:
    max_payload_bytes: int = 3 * 1024 * 1024
    lease_seconds: float = 30.0
    claim_poll_interval: float = 1.0  # long-polls re-check this often even without a wake-up


class EngineBase:
    """State and the one way to change a run, shared by the engine's parts."""

    def __init__(self, store: Store, settings: EngineSettings | None = None, clock: Clock = time.time) -> None:
        self.store = store
        self.settings = settings or EngineSettings()
        self.clock = clock
        self.notifier: Notifier | None = None
        self._rng = random.Random()
        self._closing = False
        # The newest version each worker registered with this server: a claim that was already
        # waiting when its worker hot-reloaded picks the new version up (tasks, version stamp).
        self._worker_versions: dict[str, Version] = {}
        # Per environment, task id -> (definition, until when it is trusted). Dropped when a version
        # registers through any server (a VERSION change), and in any case after TASK_CACHE_SECONDS.
        self._task_cache: dict[str, dict[str, tuple[TaskDefinition, float]]] = {}
        self.on_due: Callable[..., None] = lambda at=None: None
        """Called (from any thread) when something becomes due (at ``at``, or unknown): wakes the
        scheduler if that is earlier than it planned to look."""

    def _forget_changed(self, changes: Sequence[Change]) -> None:
        """Store listener (any thread): drop what this server cached about what ``changes`` say
        changed, wherever it changed (with PostgreSQL, other servers' changes arrive here too)."""
        for change in changes:
            if change.kind == ChangeKind.VERSION:
                self._task_cache.pop(change.environment_id, None)

    def attach(self, loop: asyncio.AbstractEventLoop) -> Notifier:
        """Route the store's change events to long-polls running on ``loop`` and to the caches."""
        self.notifier = Notifier(loop)
        self.store.add_listener(self.notifier.changed)
        self.store.add_listener(self._forget_changed)
        return self.notifier

    def stop_polling(self) -> None:
        """End long-polls now (server shutdown), so that connections can close at once."""
        self._closing = True
        if self.notifier is not None:
            self.notifier.wake_all()

    def detach(self) -> None:
        if self.notifier is not None:
            self.store.remove_listener(self.notifier.changed)
            self.store.remove_listener(self._forget_changed)
            self.notifier = None

    # -- reading -----------------------------------------------------------------------------
    def get_run(self, env: Environment, run_id: str) -> Run:
        run = self.store.get_run(run_id, env.id)
        if run is None:
            raise NotFoundError(f"run {run_id!r} not found in environment {env.slug!r}", details={"run": run_id})
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
        return self.store.list_runs(env.id, flt, limit, cursor)

    def attempts(self, run: Run) -> list[Attempt]:
        return self.store.list_attempts(run.id)

    # -- the one way to change a run -----------------------------------------------------------

    # -- the one way to change a run -----------------------------------------------------------
    def _change(
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

    def _apply(
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
        change = self._change(
            run, event, values, now=now, attempt=attempt, attempt_values=attempt_values, lease_lapsed_by=lease_lapsed_by
        )
        return self._commit(change, event.value, now)

    def _commit(self, change: RunChange, what: str, now: float) -> Run:
        updated = self.store.apply_change(change, now)
        if updated is None:
            current = self.store.get_run(change.run_id)
            state = current.status.value if current else "gone"
            raise ConflictError(
                f"run {change.run_id} changed while handling {what!r} (it is now {state}); request ignored",
                details={"run": change.run_id, "status": state},
            )
        return updated

    def _failure_change(
        self, run: Run, failure: Failure, now: float, lease_lapsed_by: float | None = None
    ) -> tuple[RunChange, bool]:
        """The change for a failed attempt of ``run``, and whether it schedules another attempt."""
        decision = decide_failure(
            failure.kind, run.attempt_count, run.max_attempts, RetryPolicy.from_dict(run.retry), self._rng
        )
        attempt_values = {"status": "FAILED", "finished_at": now, "error": failure.to_dict()}
        if decision.retry:
            values = {
                "error": failure.to_dict(),
                "available_at": now + decision.delay,
                "lease_expires_at": None,
                "worker_id": None,
            }
            event = RunEvent.RETRY
        else:
            # A failed run releases its idempotency key, so that the same key can try again.
            values = {"error": failure.to_dict(), "idempotency_key": None}
            event = RunEvent(decision.final_event)
        change = self._change(
            run,
            event,
            values,
            now=now,
            attempt=run.attempt_count,
            attempt_values=attempt_values,
            lease_lapsed_by=lease_lapsed_by,
        )
        return change, decision.retry

    def _fail(self, run: Run, failure: Failure, lease_lapsed_by: float | None = None) -> Run:
        now = self.clock()
        change, retry = self._failure_change(run, failure, now, lease_lapsed_by)
        updated = self._commit(change, "fail", now)
        if retry:
            self.on_due()
        return updated

    async def _sleep_until_change(self, env_id: str, gen: int, timeout: float) -> None:
        if self.notifier is None:
            await asyncio.sleep(timeout)
        else:
            await self.notifier.wait(env_id, gen, timeout)


__all__ = ["Clock", "EngineBase", "EngineSettings", "cancel_key"]
