"""Rows as frozen values, decoded from the store's JSON columns."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hightide.core.options import Debounce
from hightide.core.ratelimits import RateLimit
from hightide.core.states import RunStatus
from hightide.types import JSON


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


@dataclass(frozen=True)
class Environment:
    id: str
    project_id: str
    project_slug: str
    slug: str
    kind: str
    concurrency_limit: int


@dataclass(frozen=True)
class TaskDefinition:
    environment_id: str
    task_id: str
    version_id: str
    queue: str
    config: dict[str, Any]


@dataclass(frozen=True)
class Queue:
    """A queue: ``concurrency_limit`` as its tasks declare it (None: no limit of its own),
    ``concurrency_limit_override`` as a user set it (None: not overridden), whether it is paused
    (it takes triggers and starts nothing), and the rate limit its tasks declare."""

    name: str
    concurrency_limit: int | None
    paused: bool = False
    concurrency_limit_override: int | None = None
    paused_at: float | None = None
    overridden_at: float | None = None
    rate_limit: RateLimit | None = None

    @property
    def limit(self) -> int | None:
        """The limit the claim applies: the override if there is one, else the declared limit."""
        return self.concurrency_limit if self.concurrency_limit_override is None else self.concurrency_limit_override


@dataclass(frozen=True)
class Schedule:
    """A cron schedule of a task: ``kind`` ``declarative`` (the task declares it; synced when a
    version registers) or ``imperative`` (made from the API). ``next_tick_at`` is the tick it fires
    next; ``last_tick_at`` the tick it fired last (None: none yet)."""

    id: str
    environment_id: str
    task_id: str
    cron: str
    timezone: str
    external_id: str | None
    deduplication_key: str | None
    kind: str
    active: bool
    next_tick_at: float
    last_tick_at: float | None
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class DeclaredSchedule:
    """The schedule a task of a new version declares for its environment, with its next tick from now."""

    task_id: str
    cron: str
    timezone: str
    next_tick_at: float


@dataclass(frozen=True)
class Version:
    id: str
    environment_id: str
    version: str
    manifest: dict[str, Any]
    created_at: float


@dataclass(frozen=True)
class Run:
    id: str
    environment_id: str
    task_id: str
    queue: str
    status: RunStatus
    payload: JSON
    output: JSON
    error: dict[str, Any] | None
    tags: list[str]
    metadata: dict[str, Any]
    idempotency_key: str | None
    idempotency_key_expires_at: float | None
    concurrency_key: str | None
    priority: float
    max_attempts: int
    retry: dict[str, Any]
    max_duration: float | None
    attempt_count: int
    delay_until: float | None
    ttl_expires_at: float | None
    available_at: float
    lease_expires_at: float | None
    worker_id: str | None
    version: str | None
    parent_run_id: str | None
    root_run_id: str | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    executions: int = 0
    trace_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    machine: str | None = None  # the preset its next attempt runs on (None: from before machines)

    @classmethod
    def from_row(cls, row: Any) -> Run:
        m = row._mapping
        return cls(
            id=m["id"],
            environment_id=m["environment_id"],
            task_id=m["task_id"],
            queue=m["queue"],
            status=RunStatus(m["status"]),
            payload=loads(m["payload"]),
            output=loads(m["output"]),
            error=loads(m["error"]),
            tags=loads(m["tags"]),
            metadata=loads(m["metadata"]),
            idempotency_key=m["idempotency_key"],
            idempotency_key_expires_at=m["idempotency_key_expires_at"],
            concurrency_key=m["concurrency_key"],
            priority=m["priority"],
            max_attempts=m["max_attempts"],
            retry=loads(m["retry"]),
            max_duration=m["max_duration"],
            attempt_count=m["attempt_count"],
            delay_until=m["delay_until"],
            ttl_expires_at=m["ttl_expires_at"],
            available_at=m["available_at"],
            lease_expires_at=m["lease_expires_at"],
            worker_id=m["worker_id"],
            version=m["version"],
            parent_run_id=m["parent_run_id"],
            root_run_id=m["root_run_id"],
            created_at=m["created_at"],
            updated_at=m["updated_at"],
            started_at=m["started_at"],
            finished_at=m["finished_at"],
            executions=m["executions"],
            trace_id=m["trace_id"],
            span_id=m["span_id"],
            parent_span_id=m["parent_span_id"],
            machine=m["machine"],
        )


def run_from_new(new: NewRun) -> Run:
    """The run as ``insert_runs`` stores it, without reading it back."""
    return Run(
        id=new.id,
        environment_id=new.environment_id,
        task_id=new.task_id,
        queue=new.queue,
        status=new.status,
        payload=new.payload,
        output=None,
        error=None,
        tags=list(new.tags),
        metadata=dict(new.metadata),
        idempotency_key=new.idempotency_key,
        idempotency_key_expires_at=new.idempotency_key_expires_at,
        concurrency_key=new.concurrency_key,
        priority=new.priority,
        max_attempts=new.max_attempts,
        retry=dict(new.retry),
        max_duration=new.max_duration,
        attempt_count=0,
        delay_until=new.delay_until,
        ttl_expires_at=new.ttl_expires_at,
        available_at=new.available_at,
        lease_expires_at=None,
        worker_id=None,
        version=None,
        parent_run_id=new.parent_run_id,
        root_run_id=new.root_run_id,
        created_at=new.created_at,
        updated_at=new.created_at,
        started_at=None,
        finished_at=None,
        trace_id=new.trace_id,
        span_id=new.span_id,
        machine=new.machine,
        parent_span_id=new.parent_span_id,
    )


@dataclass(frozen=True)
class Attempt:
    run_id: str
    number: int
    status: str
    worker_id: str | None
    version: str | None
    started_at: float
    finished_at: float | None
    error: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: Any) -> Attempt:
        m = row._mapping
        return cls(
            run_id=m["run_id"],
            number=m["number"],
            status=m["status"],
            worker_id=m["worker_id"],
            version=m["version"],
            started_at=m["started_at"],
            finished_at=m["finished_at"],
            error=loads(m["error"]),
        )


@dataclass(frozen=True)
class LogEntry:
    run_id: str
    attempt: int
    time: float
    level: str
    message: str
    attributes: dict[str, Any] = field(default_factory=dict)
    span_id: str | None = None


@dataclass(frozen=True)
class Telemetry:
    """A worker's batch of log records and spans, stored with the results it reports."""

    logs: Sequence[LogEntry] = ()
    spans: Sequence[SpanRecord] = ()


@dataclass(frozen=True)
class SpanRecord:
    """A span recorded inside a run (times in seconds; ``end_time`` None while it is open)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    run_id: str
    attempt: int
    name: str
    kind: str
    start_time: float
    end_time: float | None
    status: str = "UNSET"
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    seq: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> SpanRecord:
        m = row._mapping
        return cls(
            trace_id=m["trace_id"],
            span_id=m["span_id"],
            parent_span_id=m["parent_span_id"],
            run_id=m["run_id"],
            attempt=m["attempt"],
            name=m["name"],
            kind=m["kind"],
            start_time=m["start_time"],
            end_time=m["end_time"],
            status=m["status"],
            attributes=loads(m["attributes"]),
            events=loads(m["events"]),
            seq=m["seq"],
        )


@dataclass(frozen=True)
class NewRun:
    """A run to insert, with everything the engine decided about it."""

    id: str
    environment_id: str
    task_id: str
    queue: str
    status: RunStatus
    payload: JSON
    tags: list[str]
    metadata: dict[str, Any]
    idempotency_key: str | None
    idempotency_key_expires_at: float | None
    concurrency_key: str | None
    priority: float
    max_attempts: int
    retry: dict[str, Any]
    max_duration: float | None
    delay_until: float | None
    ttl_expires_at: float | None
    available_at: float
    parent_run_id: str | None
    root_run_id: str | None
    created_at: float
    trace_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    machine: str | None = None
    debounce: Debounce | None = None  # a DELAYED run later triggers with the same key push back


@dataclass(frozen=True)
class RunFilter:
    statuses: tuple[str, ...] = ()
    task_ids: tuple[str, ...] = ()
    tag: str | None = None
    created_from: float | None = None
    created_to: float | None = None
    parent_run_id: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class RunChange:
    """One conditional update: apply ``values`` only if the run is still in ``expect_status`` (on
    attempt ``expect_attempt``, and with its lease lapsed by ``lease_lapsed_by`` when given).

    The changes the scheduler makes because a time came also require that it is still due, so that
    one it read before a request moved the time (a reschedule) or the run (a claim) is refused:
    ``delay_ended_by`` (its ``available_at`` by then) and ``ttl_ended_by`` (its ttl ended by then,
    and it never started)."""

    run_id: str
    expect_status: str
    expect_attempt: int | None
    values: dict[str, Any]
    attempt_values: dict[str, Any] | None = None
    lease_lapsed_by: float | None = None
    expect_execution: int | None = None
    expect_worker: str | None = None
    """The worker the run must still be executing for: after a release, (run, attempt) may name
    another worker's execution of the same attempt."""
    delay_ended_by: float | None = None
    ttl_ended_by: float | None = None

    @property
    def timed(self) -> bool:
        """Whether this change also requires a time of the run to have come."""
        return self.delay_ended_by is not None or self.ttl_ended_by is not None


@dataclass(frozen=True)
class Waitpoint:
    """Something runs can wait for: a time (DURATION), a run finishing (RUN), or a token (TOKEN)."""

    id: str
    environment_id: str
    kind: str
    status: str
    run_id: str | None = None
    owner_run_id: str | None = None
    resume_at: float | None = None
    timeout_at: float | None = None
    output: JSON = None
    tags: list[str] = field(default_factory=list)
    idempotency_key: str | None = None
    idempotency_key_expires_at: float | None = None
    created_at: float = 0.0
    completed_at: float | None = None

    @classmethod
    def from_row(cls, row: Any) -> Waitpoint:
        m = row._mapping
        return cls(
            id=m["id"],
            environment_id=m["environment_id"],
            kind=m["kind"],
            status=m["status"],
            run_id=m["run_id"],
            owner_run_id=m["owner_run_id"],
            resume_at=m["resume_at"],
            timeout_at=m["timeout_at"],
            output=loads(m["output"]),
            tags=loads(m["tags"]),
            idempotency_key=m["idempotency_key"],
            idempotency_key_expires_at=m["idempotency_key_expires_at"],
            created_at=m["created_at"],
            completed_at=m["completed_at"],
        )


@dataclass(frozen=True)
class JournalEntry:
    """One durable operation of a run, at position ``seq`` in call order. ``result`` is what the
    operation returned when it needs no waiting (a step's value, a trigger's handles); a wait's
    outcome is read from its ``waitpoint_ids``."""

    run_id: str
    seq: str
    kind: str
    name: str
    result: JSON = None
    waitpoint_ids: list[str] = field(default_factory=list)
    created_at: float = 0.0
    attempt: int = 1

    @classmethod
    def from_row(cls, row: Any) -> JournalEntry:
        m = row._mapping
        return cls(
            run_id=m["run_id"],
            seq=m["seq"],
            kind=m["kind"],
            name=m["name"],
            result=loads(m["result"]),
            waitpoint_ids=loads(m["waitpoint_ids"]),
            created_at=m["created_at"],
            attempt=m["attempt"],
        )


@dataclass(frozen=True)
class JournalView:
    """Runs' journals with what their waits depend on, read together: the waitpoints by id and the
    awaited runs by id."""

    entries: dict[str, list[JournalEntry]]
    waitpoints: dict[str, Waitpoint]
    runs: dict[str, Run]


@dataclass(frozen=True)
class Suspension:
    """A run that stops to wait: its execution, the new timers to record first (entry, timer), and
    the journal positions it waits on."""

    run_id: str
    attempt: int
    worker_id: str
    execution: int | None
    waiting_on: tuple[str, ...] = ()
    timers: tuple[tuple[JournalEntry, Waitpoint], ...] = ()


@dataclass(frozen=True)
class ApiKey:
    """An environment's secret key as it may be shown: its first and last characters (``prefix``,
    ``last4``: none for keys made before they were kept); the secret itself is never stored, only
    its hash."""

    id: str
    environment_id: str
    prefix: str
    created_at: float
    revoked_at: float | None
    last4: str | None = None

    @property
    def shown(self) -> str:
        """``ht_dev_SmNj1…a1b2``: enough to tell keys apart, never enough to use one."""
        return f"{self.prefix}…{self.last4 or ''}"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class BulkAction:
    """A background cancel or replay of many runs, with its progress. ``selection`` is
    ``{"ids": [...]}`` or a filter (``RunFilter``'s fields, with ``created_to`` bounded by when the
    action was made, so that runs made since, its own replays included, are never in it)."""

    id: str
    environment_id: str
    action: str
    selection: dict[str, Any]
    status: str
    total: int
    processed: int = 0
    succeeded: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[list[str]] = field(default_factory=list)
    cursor: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    finished_at: float | None = None

    @classmethod
    def from_row(cls, row: Any) -> BulkAction:
        m = row._mapping
        return cls(
            id=m["id"],
            environment_id=m["environment_id"],
            action=m["action"],
            selection=loads(m["selection"]),
            status=m["status"],
            total=m["total"],
            processed=m["processed"],
            succeeded=m["succeeded"],
            skipped=m["skipped"],
            failed=m["failed"],
            failures=loads(m["failures"]),
            cursor=m["cursor"],
            created_at=m["created_at"],
            updated_at=m["updated_at"],
            finished_at=m["finished_at"],
        )
