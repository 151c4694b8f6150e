"""The run engine. Every state change goes through ``core.states.transition`` and then the store's
one conditional update, so a repeated or late request is rejected cleanly instead of applied twice."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio

from hightide.core.durations import parse_duration
from hightide.core.failures import Failure, FailureKind
from hightide.core.ids import new_id
from hightide.core.retry import RetryPolicy, decide_failure
from hightide.core.states import FINAL_STATUSES, RunEvent, RunStatus, transition
from hightide.engine.notify import Notifier
from hightide.engine.options import DEFAULT_IDEMPOTENCY_TTL, MAX_BATCH_ITEMS, TriggerSpec
from hightide.engine.payloads import check_schema, check_size
from hightide.errors import AlreadyExistsError, ConflictError, NotFoundError, ValidationError
from hightide.store import Store
from hightide.store.records import (
    Attempt,
    Environment,
    LogEntry,
    NewRun,
    Run,
    RunFilter,
    TaskDefinition,
    Version,
)

Clock = Callable[[], float]


@dataclass(frozen=True)
class EngineSettings:
    max_payload_bytes: int = 3 * 1024 * 1024
    lease_seconds: float = 30.0
    claim_poll_interval: float = 1.0  # long-polls re-check this often even without a wake-up


class RunEngine:
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
        self.on_due: Callable[[], None] = lambda: None
        """Called (from any thread) when something becomes due earlier: wakes the scheduler."""

    def attach(self, loop: asyncio.AbstractEventLoop) -> Notifier:
        """Route the store's change notifications to long-polls running on ``loop``."""
        self.notifier = Notifier(loop)
        self.store.add_listener(self.notifier.changed)
        return self.notifier

    def stop_polling(self) -> None:
        """End long-polls now (server shutdown), so that connections can close at once."""
        self._closing = True
        if self.notifier is not None:
            self.notifier.wake_all()

    def detach(self) -> None:
        if self.notifier is not None:
            self.store.remove_listener(self.notifier.changed)
            self.notifier = None

    # -- versions ----------------------------------------------------------------------------
    def register_version(self, env: Environment, manifest: dict[str, Any], worker_id: str | None = None) -> Version:
        tasks = manifest.get("tasks")
        if not isinstance(tasks, list) or not tasks:
            raise ValidationError("manifest.tasks: a version must declare at least one task")
        seen: set[str] = set()
        for i, task in enumerate(tasks):
            task_id = task.get("id") if isinstance(task, dict) else None
            if not isinstance(task_id, str) or not task_id:
                raise ValidationError(f"manifest.tasks[{i}].id: expected a non-empty string")
            if task_id in seen:
                raise ValidationError(f"manifest.tasks[{i}].id: task {task_id!r} is declared twice")
            seen.add(task_id)
            queue = task.setdefault("queue", {"name": f"task/{task_id}"})
            limit = queue.get("concurrency_limit")
            if limit is not None and (not isinstance(limit, int) or limit < 0):
                raise ValidationError(f"manifest.tasks[{i}].queue.concurrency_limit: expected a whole number >= 0")
            RetryPolicy.from_dict(task.get("retry"))
        date_prefix = datetime.fromtimestamp(self.clock(), UTC).strftime("%Y%m%d")
        for _ in range(5):  # two workers registering at once race for the next number: retry
            try:
                version = self.store.register_version(env.id, date_prefix, manifest, self.clock())
            except AlreadyExistsError:
                continue
            if worker_id:
                self._worker_versions[worker_id] = version
            return version
        raise ConflictError("could not number the new version: too many registrations at once; try again")

    # -- triggering --------------------------------------------------------------------------
    def trigger(self, env: Environment, specs: Sequence[TriggerSpec]) -> list[tuple[Run, bool]]:
        """Create runs atomically (all or none). Returns each run with ``True`` if it was cached
        by its idempotency key."""
        if not specs:
            raise ValidationError("items: a batch needs at least one item")
        if len(specs) > MAX_BATCH_ITEMS:
            raise ValidationError(
                f"items: {len(specs)} items is over the limit of {MAX_BATCH_ITEMS} per batch",
                details={"field": "items"},
            )
        now = self.clock()
        tasks: dict[str, TaskDefinition] = {}
        new_runs = []
        for i, spec in enumerate(specs):
            where = f"items[{i}]." if len(specs) > 1 else ""
            task = tasks.get(spec.task_id) or self._task(env, spec.task_id)
            tasks[spec.task_id] = task
            new_runs.append(self._new_run(env, task, spec, now, where))
        try:
            results = self.store.insert_runs(new_runs, now)
        except AlreadyExistsError:
            # Another server inserted the same idempotency key at the same moment: now it's visible.
            results = self.store.insert_runs(new_runs, self.clock())
        if any(new.delay_until or new.ttl_expires_at for new in new_runs):
            self.on_due()
        return results

    def _task(self, env: Environment, task_id: str) -> TaskDefinition:
        task = self.store.get_task(env.id, task_id)
        if task is None:
            raise NotFoundError(
                f"task {task_id!r} is not registered in environment {env.slug!r}; "
                "start a worker (`hightide dev` or `hightide worker`) whose code defines it",
                details={"task": task_id},
            )
        return task

    def _new_run(self, env: Environment, task: TaskDefinition, spec: TriggerSpec, now: float, where: str) -> NewRun:
        check_size(spec.payload, self.settings.max_payload_bytes, f"{where}payload")
        check_schema(spec.payload, task.config.get("payload_schema"), task.task_id, f"{where}payload")
        check_size(spec.metadata, self.settings.max_payload_bytes, f"{where}options.metadata")
        retry = task.config.get("retry") or {}
        policy = RetryPolicy.from_dict(retry)
        ttl = spec.ttl if spec.ttl is not None else task.config.get("ttl")
        delayed = spec.delay_until is not None and spec.delay_until > now
        available_at = spec.delay_until if delayed and spec.delay_until else now
        parent = self.store.get_run(spec.parent_run_id, env.id) if spec.parent_run_id else None
        if spec.parent_run_id and parent is None:
            raise NotFoundError(f"{where}options.parent_run_id: run {spec.parent_run_id!r} not found")
        key_ttl = spec.idempotency_key_ttl if spec.idempotency_key_ttl is not None else DEFAULT_IDEMPOTENCY_TTL
        return NewRun(
            id=new_id("run", now),
            environment_id=env.id,
            task_id=task.task_id,
            queue=spec.queue or task.queue,
            status=RunStatus.DELAYED if delayed else RunStatus.QUEUED,
            payload=spec.payload,
            tags=list(dict.fromkeys(spec.tags)),
            metadata=spec.metadata,
            idempotency_key=spec.idempotency_key,
            idempotency_key_expires_at=now + key_ttl if spec.idempotency_key else None,
            concurrency_key=spec.concurrency_key,
            priority=spec.priority,
            max_attempts=spec.max_attempts or policy.max_attempts,
            retry=policy.to_dict(),
            max_duration=task.config.get("max_duration"),
            delay_until=spec.delay_until if delayed else None,
            ttl_expires_at=now + float(ttl) if ttl else None,
            available_at=available_at,
            parent_run_id=parent.id if parent else None,
            root_run_id=(parent.root_run_id or parent.id) if parent else None,
            created_at=now,
        )

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
        target = transition(run.status, event)
        now = self.clock()
        full = {"status": target.value, **(values or {})}
        if target in FINAL_STATUSES:
            full.setdefault("finished_at", now)
            full.setdefault("lease_expires_at", None)
        updated = self.store.update_run(
            run.id,
            expect_status=run.status.value,
            expect_attempt=attempt,
            values=full,
            attempt_values=attempt_values,
            lease_lapsed_by=lease_lapsed_by,
            now=now,
        )
        if updated is None:
            current = self.store.get_run(run.id)
            state = current.status.value if current else "gone"
            raise ConflictError(
                f"run {run.id} changed while handling {event.value!r} (it is now {state}); request ignored",
                details={"run": run.id, "status": state},
            )
        return updated

    # -- the worker protocol -----------------------------------------------------------------
    def claim(self, env: Environment, worker_id: str, version: Version, limit: int) -> list[Run]:
        task_ids = [task["id"] for task in version.manifest.get("tasks", [])]
        return self.store.claim_runs(
            env.id,
            task_ids,
            worker_id=worker_id,
            version=version.version,
            limit=limit,
            lease_seconds=self.settings.lease_seconds,
            now=self.clock(),
        )

    async def claim_wait(
        self,
        env: Environment,
        worker_id: str,
        version: Version,
        limit: int,
        wait: float,
        gone: Callable[[], Awaitable[bool]] | None = None,
    ) -> list[Run]:
        """Claim, long-polling up to ``wait`` seconds for work to appear. ``gone`` tells whether the
        worker hung up: then nothing is claimed for it."""
        deadline = self.clock() + wait
        while True:
            if self._closing or (gone is not None and await gone()):
                return []
            gen = self.notifier.generation(env.id) if self.notifier else 0
            newest = self._worker_versions.get(worker_id)
            if newest is not None and newest.created_at > version.created_at:
                version = newest
            runs = await anyio.to_thread.run_sync(self.claim, env, worker_id, version, limit)
            remaining = deadline - self.clock()
            if runs or remaining <= 0:
                return runs
            await self._sleep_until_change(env.id, gen, min(remaining, self.settings.claim_poll_interval))

    async def _sleep_until_change(self, env_id: str, gen: int, timeout: float) -> None:
        if self.notifier is None:
            await asyncio.sleep(timeout)
        else:
            await self.notifier.wait(env_id, gen, timeout)

    async def heartbeat(
        self, env: Environment, worker_id: str, held: Sequence[tuple[str, int]], wait: float, extend: bool = True
    ) -> list[str]:
        """Extend the leases of ``held`` (run id, attempt) and return the runs the worker must stop
        (cancelled, or lost to an expired lease). Waits up to ``wait`` seconds for one to appear."""
        now = self.clock()
        if extend:
            lost = await anyio.to_thread.run_sync(
                self.store.extend_leases, worker_id, list(held), now + self.settings.lease_seconds, now
            )
        else:
            lost = await anyio.to_thread.run_sync(self.store.runs_not_held, worker_id, list(held))
        deadline = now + wait
        while not lost and held and not self._closing:
            gen = self.notifier.generation(env.id) if self.notifier else 0
            remaining = deadline - self.clock()
            if remaining <= 0:
                break
            await self._sleep_until_change(env.id, gen, min(remaining, self.settings.claim_poll_interval))
            lost = await anyio.to_thread.run_sync(self.store.runs_not_held, worker_id, list(held))
        return lost

    def complete(self, env: Environment, run_id: str, attempt: int, output: Any) -> Run:
        run = self.get_run(env, run_id)
        self._check_attempt(run, attempt)
        check_size(output, self.settings.max_payload_bytes, "output")
        now = self.clock()
        return self._apply(
            run,
            RunEvent.COMPLETE,
            {"output": output, "lease_expires_at": None},
            attempt=attempt,
            attempt_values={"status": RunStatus.COMPLETED.value, "finished_at": now},
        )

    def fail(self, env: Environment, run_id: str, attempt: int, failure: Failure) -> Run:
        run = self.get_run(env, run_id)
        self._check_attempt(run, attempt)
        return self._fail(run, failure)

    def _check_attempt(self, run: Run, attempt: int) -> None:
        if run.status != RunStatus.EXECUTING or run.attempt_count != attempt:
            raise ConflictError(
                f"run {run.id} is {run.status.value} on attempt {run.attempt_count}, not executing attempt "
                f"{attempt}; this result is discarded",
                details={"run": run.id, "status": run.status.value},
            )

    def _fail(self, run: Run, failure: Failure, lease_lapsed_by: float | None = None) -> Run:
        decision = decide_failure(
            failure.kind, run.attempt_count, run.max_attempts, RetryPolicy.from_dict(run.retry), self._rng
        )
        now = self.clock()
        attempt_values = {"status": "FAILED", "finished_at": now, "error": failure.to_dict()}
        if decision.retry:
            values = {
                "error": failure.to_dict(),
                "available_at": now + decision.delay,
                "lease_expires_at": None,
                "worker_id": None,
            }
            retried = self._apply(
                run,
                RunEvent.RETRY,
                values,
                attempt=run.attempt_count,
                attempt_values=attempt_values,
                lease_lapsed_by=lease_lapsed_by,
            )
            self.on_due()
            return retried
        # A failed run releases its idempotency key, so that the same key can try again.
        values = {"error": failure.to_dict(), "idempotency_key": None}
        return self._apply(
            run,
            RunEvent(decision.final_event),
            values,
            attempt=run.attempt_count,
            attempt_values=attempt_values,
            lease_lapsed_by=lease_lapsed_by,
        )

    def append_logs(self, env: Environment, entries: Sequence[LogEntry]) -> None:
        run_ids = {e.run_id for e in entries}
        for run_id in run_ids:
            self.get_run(env, run_id)
        self.store.append_logs(entries)

    def logs(self, env: Environment, run_id: str, after_id: int = 0) -> list[tuple[int, LogEntry]]:
        self.get_run(env, run_id)
        return self.store.list_logs(run_id, after_id)

    # -- control -----------------------------------------------------------------------------
    def cancel(self, env: Environment, run_id: str) -> Run:
        """Cancel a run that has not finished, and its unfinished children."""
        run = self.get_run(env, run_id)
        if run.status.is_final:
            raise ConflictError(
                f"run {run_id} is already {run.status.value}; only unfinished runs can be cancelled",
                details={"run": run_id, "status": run.status.value},
            )
        executing = run.status == RunStatus.EXECUTING
        cancelled = self._apply(
            run,
            RunEvent.CANCEL,
            {"lease_expires_at": None, "idempotency_key": None},
            attempt=run.attempt_count if executing else None,
            attempt_values={"status": RunStatus.CANCELED.value, "finished_at": self.clock()} if executing else None,
        )
        active = [s.value for s in RunStatus if not s.is_final]
        for child_id in self.store.child_run_ids(run.id, active):
            try:
                self.cancel(env, child_id)
            except ConflictError:
                pass  # it finished meanwhile
        return cancelled

    def replay(self, env: Environment, run_id: str) -> Run:
        """A new run of the same task with the same payload, tags and metadata, on the current version."""
        run = self.get_run(env, run_id)
        spec = TriggerSpec(task_id=run.task_id, payload=run.payload, tags=tuple(run.tags), metadata=run.metadata)
        return self.trigger(env, [spec])[0][0]

    def reschedule(self, env: Environment, run_id: str, delay: Any) -> Run:
        from hightide.engine.options import parse_delay

        run = self.get_run(env, run_id)
        if run.status != RunStatus.DELAYED:
            raise ConflictError(
                f"run {run_id} is {run.status.value}; only DELAYED runs can be rescheduled",
                details={"run": run_id, "status": run.status.value},
            )
        if delay is None:
            raise ValidationError("delay: required, e.g. '1h' or an ISO 8601 date-time", details={"field": "delay"})
        until = parse_delay(delay, self.clock())
        assert until is not None
        rescheduled = self._apply(run, RunEvent.RESCHEDULE, {"delay_until": until, "available_at": until})
        self.on_due()
        return rescheduled

    # -- time-driven changes (called by the scheduler service) ---------------------------------
    def process_due(self) -> int:
        """Enqueue delayed runs whose time came, expire runs past their ttl, and fail attempts whose
        lease lapsed (their worker died). Returns how many runs changed."""
        now = self.clock()
        due = self.store.due_runs(now)
        changed = 0
        for run in due["expired"]:
            changed += self._try(self._apply, run, RunEvent.EXPIRE, {"idempotency_key": None})
        for run in due["delayed"]:
            changed += self._try(self._apply, run, RunEvent.ENQUEUE, {"delay_until": None})
        for run in due["lease_expired"]:
            failure = Failure(
                name="WorkerLost",
                message=f"the worker {run.worker_id} stopped heartbeating and its lease on attempt "
                f"{run.attempt_count} expired",
                kind=FailureKind.CRASH,
            )
            changed += self._try(self._fail, run, failure, now)
        return changed

    @staticmethod
    def _try(action: Callable[..., Run], *args: Any) -> int:
        try:
            action(*args)
            return 1
        except ConflictError:
            return 0  # changed concurrently by a request: that request won

    def next_due_in(self, cap: float) -> float:
        now = self.clock()
        nxt = self.store.next_due_time(now)
        return cap if nxt is None else max(0.0, min(cap, nxt - now))


def parse_wait(value: Any, default: float, cap: float) -> float:
    seconds = default if value is None else parse_duration(value, field="wait")
    return min(seconds, cap)
