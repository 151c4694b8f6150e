"""Versions and triggering: validate options and payloads, resolve idempotency, insert runs."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from hightide.core.ids import new_id
from hightide.core.machines import DEFAULT_MACHINE
from hightide.core.metadata import check_metadata_size
from hightide.core.retry import RetryPolicy
from hightide.core.states import RunStatus
from hightide.core.tracing import attempt_span_id, new_span_id, new_trace_id
from hightide.engine.base import EngineCore
from hightide.engine.manifest import check_manifest_task, declared_schedules
from hightide.engine.options import DEFAULT_IDEMPOTENCY_TTL, MAX_BATCH_ITEMS, TriggerSpec
from hightide.engine.payloads import check_schema, check_size
from hightide.engine.traces import trace_ids
from hightide.errors import AlreadyExistsError, ConflictError, NotFoundError, ValidationError
from hightide.store.changes import Change, ChangeKind
from hightide.store.records import (
    Environment,
    NewRun,
    Run,
    TaskDefinition,
    Version,
)

TASK_CACHE_SECONDS = 2.0


class Triggering:
    """Versions (what tasks exist) and triggering: validate options and payloads, insert runs."""

    def __init__(self, core: EngineCore) -> None:
        self.core = core
        self.store = core.store
        # The newest version each worker registered with this server: a claim that was already
        # waiting when its worker hot-reloaded picks the new version up (tasks, version stamp).
        self._worker_versions: dict[str, Version] = {}
        # Per environment, task id -> (definition, until when it is trusted). Dropped when a version
        # registers through any server (a VERSION change), and in any case after TASK_CACHE_SECONDS.
        self._task_cache: dict[str, dict[str, tuple[TaskDefinition, float]]] = {}

    def forget_changed(self, changes: Sequence[Change]) -> None:
        """Store listener (any thread): drop the task definitions cached for environments where a
        version registered, wherever it registered (with PostgreSQL, other servers' too)."""
        for change in changes:
            if change.kind == ChangeKind.VERSION:
                self._task_cache.pop(change.environment_id, None)

    def newest_version(self, worker_id: str, version: Version) -> Version:
        """``version``, or a newer one ``worker_id`` registered since (it hot-reloaded)."""
        newest = self._worker_versions.get(worker_id)
        return newest if newest is not None and newest.created_at > version.created_at else version

    # -- versions ----------------------------------------------------------------------------
    def register_version(self, env: Environment, manifest: dict[str, Any], worker_id: str | None = None) -> Version:
        tasks = manifest.get("tasks")
        if not isinstance(tasks, list) or not tasks:
            raise ValidationError("manifest.tasks: a version must declare at least one task")
        seen: set[str] = set()
        for i, task in enumerate(tasks):
            task_id = check_manifest_task(task, f"manifest.tasks[{i}]")
            if task_id in seen:
                raise ValidationError(f"manifest.tasks[{i}].id: task {task_id!r} is declared twice")
            seen.add(task_id)
        date_prefix = datetime.fromtimestamp(self.core.clock(), UTC).strftime("%Y%m%d")
        # The tasks' declarative schedules for this environment, synced in the version's transaction.
        schedules = declared_schedules(env, manifest, self.core.clock())
        for _ in range(5):  # two workers registering at once race for the next number: retry
            try:
                version = self.store.environments.register_version(
                    env.id, date_prefix, manifest, self.core.clock(), schedules
                )
            except AlreadyExistsError:
                continue
            if worker_id:
                self._worker_versions[worker_id] = version
            self._task_cache.pop(env.id, None)
            if schedules:
                self.core.due(min(s.next_tick_at for s in schedules))
            return version
        raise ConflictError("could not number the new version: too many registrations at once; try again")

    # -- triggering --------------------------------------------------------------------------
    def trigger(self, env: Environment, specs: Sequence[TriggerSpec]) -> list[tuple[Run, bool]]:
        """Create runs atomically (all or none). Returns each run with ``True`` if it was cached
        by its idempotency key."""
        new_runs = self.prepare(env, specs)
        try:
            results = self.store.runs.insert_runs(new_runs, self.core.clock())
        except AlreadyExistsError:
            # Another server inserted the same idempotency key at the same moment: now it's visible.
            results = self.store.runs.insert_runs(new_runs, self.core.clock())
        self.announce(new_runs)
        return results

    def reset_idempotency_key(self, env: Environment, task_id: str, key: str) -> bool:
        """Forget ``key`` for ``task_id``, so that the next trigger with it creates a new run."""
        return self.store.runs.reset_idempotency_key(env.id, task_id, key) > 0

    def announce(self, new_runs: Sequence[NewRun]) -> None:
        """Tell the scheduler when the first of ``new_runs`` (inserted) becomes due."""
        due = [t for new in new_runs for t in (new.delay_until, new.ttl_expires_at) if t]
        if due:
            self.core.due(min(due))

    def prepare(self, env: Environment, specs: Sequence[TriggerSpec]) -> list[NewRun]:
        """Validate ``specs`` and decide everything about the runs they create."""
        if not specs:
            raise ValidationError("items: a batch needs at least one item")
        if len(specs) > MAX_BATCH_ITEMS:
            raise ValidationError(
                f"items: {len(specs)} items is over the limit of {MAX_BATCH_ITEMS} per batch",
                details={"field": "items"},
            )
        now = self.core.clock()
        tasks: dict[str, tuple[TaskDefinition, RetryPolicy]] = {}  # each task read and its policy decided once
        new_runs = []
        for i, spec in enumerate(specs):
            where = f"items[{i}]." if len(specs) > 1 else ""
            if spec.task_id not in tasks:
                task = self._task(env, spec.task_id)
                tasks[spec.task_id] = (task, RetryPolicy.from_dict(task.config.get("retry") or {}))
            task, policy = tasks[spec.task_id]
            new_runs.append(self._new_run(env, task, policy, spec, now, where))
        return new_runs

    def _task(self, env: Environment, task_id: str) -> TaskDefinition:
        # Task definitions change only when a version registers: cache them briefly. A version
        # registered through another server drops them at once (its VERSION change, with PostgreSQL)
        # and in any case within TASK_CACHE_SECONDS.
        hit = self._task_cache.get(env.id, {}).get(task_id)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        task = self.store.environments.get_task(env.id, task_id)
        if task is not None:
            self._task_cache.setdefault(env.id, {})[task_id] = (task, time.monotonic() + TASK_CACHE_SECONDS)
        if task is None:
            raise NotFoundError(
                f"task {task_id!r} is not registered in environment {env.slug!r}; "
                "start a worker (`hightide dev` or `hightide worker`) whose code defines it",
                details={"task": task_id},
            )
        return task

    def _new_run(
        self, env: Environment, task: TaskDefinition, policy: RetryPolicy, spec: TriggerSpec, now: float, where: str
    ) -> NewRun:
        check_size(spec.payload, self.core.settings.max_payload_bytes, f"{where}payload")
        if task.config.get("payload_schema_checked", True):  # else the model has validators it does not describe
            check_schema(spec.payload, task.config.get("payload_schema"), task.task_id, f"{where}payload")
        if spec.metadata:
            check_size(spec.metadata, self.core.settings.max_payload_bytes, f"{where}options.metadata")
            check_metadata_size(spec.metadata, None, field=f"{where}options.metadata")  # 256 KB (SPEC §5)
        ttl = spec.ttl if spec.ttl is not None else task.config.get("ttl")
        delay_until = now + spec.debounce.delay if spec.debounce is not None else spec.delay_until
        delayed = delay_until is not None and delay_until > now
        available_at = delay_until if delayed and delay_until else now
        parent = self.store.runs.get_run(spec.parent_run_id, env.id) if spec.parent_run_id else None
        if spec.parent_run_id and parent is None:
            raise NotFoundError(f"{where}options.parent_run_id: run {spec.parent_run_id!r} not found")
        key_ttl = spec.idempotency_key_ttl if spec.idempotency_key_ttl is not None else DEFAULT_IDEMPOTENCY_TTL
        trace_id, parent_span_id = _trace_parent(spec, parent)
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
            machine=spec.machine or task.config.get("machine") or DEFAULT_MACHINE,
            delay_until=delay_until if delayed else None,
            # The ttl counts from when the run is queued: a delayed run's clock starts after its
            # delay (the scheduler restarts it when it enqueues the run; see `delayed_ttl`).
            ttl_expires_at=available_at + float(ttl) if ttl else None,
            available_at=available_at,
            parent_run_id=parent.id if parent else None,
            root_run_id=(parent.root_run_id or parent.id) if parent else None,
            created_at=now,
            trace_id=trace_id,
            span_id=new_span_id(),
            parent_span_id=parent_span_id,
            debounce=spec.debounce if delayed else None,  # a delay of 0 queues it at once: nothing to push
        )


def _trace_parent(spec: TriggerSpec, parent: Run | None) -> tuple[str, str | None]:
    """The new run's trace and the span it hangs under. A child run is in its parent's trace, under
    the calling span (``traceparent``: the trigger inside the parent) or else the parent's current
    attempt. Any other run is under the caller's span if there is one, or starts a trace."""
    caller = spec.trace_parent
    if parent is not None:
        trace_id, span_id = trace_ids(parent)
        if caller is not None and caller.trace_id == trace_id:
            return trace_id, caller.span_id
        return trace_id, attempt_span_id(span_id, parent.attempt_count) if parent.attempt_count else span_id
    if caller is not None:
        return caller.trace_id, caller.span_id
    return new_trace_id(), None
