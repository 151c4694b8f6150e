"""What the SDK returns: run handles, runs, child run results and waitpoint tokens."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from hightide.core.ratelimits import RateLimit
from hightide.core.states import RunStatus
from hightide.errors import SubtaskUnwrapError, WaitpointTimeoutError

T = TypeVar("T")


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class RunHandle(Generic[T]):
    """Returned by ``trigger``: the run's id, and whether an idempotency key matched an existing run.
    ``public_access_token`` reads this run (``runs.retrieve``, ``runs.subscribe``) for one hour: hand
    it to a browser (None for runs triggered inside a run)."""

    id: str
    task_id: str
    is_cached: bool = False
    public_access_token: str | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class BatchHandle:
    runs: list[RunHandle[Any]]

    @property
    def ids(self) -> list[str]:
        return [run.id for run in self.runs]


@dataclass(frozen=True)
class Attempt:
    number: int
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    error: dict[str, Any] | None


@dataclass(frozen=True)
class Run:
    """A run as ``runs.retrieve`` returns it. ``status`` is a ``RunStatus`` (a ``str`` enum)."""

    id: str
    task_id: str
    status: RunStatus
    payload: Any
    output: Any
    error: dict[str, Any] | None
    attempt_count: int
    tags: list[str]
    metadata: dict[str, Any]
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    delay_until: datetime | None = None
    ttl_expires_at: datetime | None = None  # EXPIRED if not started by then (counts from when it is queued)
    idempotency_key: str | None = None
    concurrency_key: str | None = None  # its own copy of its queue's limits (docs/flow-control.md)
    machine: str | None = None  # the preset its (next) attempt runs on, e.g. "small-1x"
    parent_run_id: str | None = None
    version: str | None = None
    trace_id: str | None = None  # the OpenTelemetry trace it belongs to (GET /api/v1/runs/{id}/trace)
    attempts: list[Attempt] = field(default_factory=list)
    # While WAITING: what it waits for, each {"kind": "RUN" | "DURATION" | "TOKEN", ...}: a child's
    # "run_id", a timer's "resume_at", a token's "token_id" and "url" (POST JSON to it to complete it).
    waiting_for: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_finished(self) -> bool:
        return self.status.is_final

    @property
    def is_success(self) -> bool:
        return self.status == RunStatus.COMPLETED

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Run:
        return cls(
            id=data["id"],
            task_id=data["task_id"],
            status=RunStatus(data["status"]),
            payload=data.get("payload"),
            output=data.get("output"),
            error=data.get("error"),
            attempt_count=data.get("attempt_count", 0),
            tags=data.get("tags") or [],
            metadata=data.get("metadata") or {},
            created_at=_time(data.get("created_at")),
            started_at=_time(data.get("started_at")),
            finished_at=_time(data.get("finished_at")),
            delay_until=_time(data.get("delay_until")),
            ttl_expires_at=_time(data.get("ttl_expires_at")),
            idempotency_key=data.get("idempotency_key"),
            concurrency_key=data.get("concurrency_key"),
            machine=data.get("machine"),
            parent_run_id=data.get("parent_run_id"),
            version=data.get("version"),
            trace_id=data.get("trace_id"),
            attempts=[
                Attempt(
                    a["number"], a["status"], _time(a.get("started_at")), _time(a.get("finished_at")), a.get("error")
                )
                for a in data.get("attempts") or []
            ],
            waiting_for=list(data.get("waiting_for") or []),
            raw=data,
        )


@dataclass(frozen=True)
class LogRecord:
    time: datetime | None
    level: str
    message: str
    attempt: int
    attributes: dict[str, Any]
    span_id: str | None = None  # the span it was written in (see docs/tracing.md)


@dataclass(frozen=True)
class TaskRunResult(Generic[T]):
    """What ``trigger_and_wait`` returns: the child's output when ``ok``, else its ``error``.

    >>> result = await child.trigger_and_wait({"n": 1})
    >>> output = result.unwrap()  # or raises SubtaskUnwrapError
    """

    ok: bool
    id: str
    task_id: str
    output: T | None = None
    error: dict[str, Any] | None = None
    status: str = "COMPLETED"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskRunResult[Any]:
        return cls(data["ok"], data["id"], data["task_id"], data.get("output"), data.get("error"), data["status"])

    def unwrap(self) -> T:
        """The output, or ``SubtaskUnwrapError`` (with the child's run id and error) if it failed."""
        if not self.ok:
            raise SubtaskUnwrapError(self.id, self.task_id, self.error)
        return self.output  # type: ignore[return-value]


@dataclass(frozen=True)
class BatchResult(Generic[T]):
    """What ``batch_trigger_and_wait`` returns: ``runs``, one result per item, in input order."""

    runs: list[TaskRunResult[T]]

    def unwrap(self) -> list[T]:
        """Every output, or ``SubtaskUnwrapError`` for the first child that failed."""
        return [run.unwrap() for run in self.runs]


@dataclass(frozen=True)
class Token:
    """A waitpoint token: ``id`` to wait for or complete it, ``url`` to complete it from a webhook."""

    id: str
    url: str
    status: str = "WAITING"
    output: Any = None
    timeout_at: datetime | None = None
    tags: list[str] = field(default_factory=list)
    created_at: datetime | None = None
    completed_at: datetime | None = None
    is_cached: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any], api_url: str = "") -> Token:
        url = data.get("url", "")
        return cls(
            id=data["id"],
            url=api_url + url if url.startswith("/") else url,  # the journal keeps it relative
            status=data.get("status", "WAITING"),
            output=data.get("output"),
            timeout_at=_time(data.get("timeout_at")),
            tags=list(data.get("tags") or []),
            created_at=_time(data.get("created_at")),
            completed_at=_time(data.get("completed_at")),
            is_cached=bool(data.get("is_cached", False)),
        )


@dataclass(frozen=True)
class BulkAction:
    """A bulk cancel or replay working in the background: ``processed`` of ``total`` runs so far
    (``succeeded``, ``skipped``: already finished, ``failed``, with the first ``failures``)."""

    id: str
    action: str
    status: str  # RUNNING, COMPLETED or ABORTED
    total: int = 0
    processed: int = 0
    succeeded: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    created_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def is_finished(self) -> bool:
        return self.status != "RUNNING"

    @property
    def progress(self) -> float:
        """From 0 to 1."""
        return 1.0 if not self.total else min(1.0, self.processed / self.total)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BulkAction:
        return cls(
            id=data["id"],
            action=data["action"],
            status=data["status"],
            total=int(data.get("total", 0)),
            processed=int(data.get("processed", 0)),
            succeeded=int(data.get("succeeded", 0)),
            skipped=int(data.get("skipped", 0)),
            failed=int(data.get("failed", 0)),
            failures=list(data.get("failures") or []),
            created_at=_time(data.get("created_at")),
            finished_at=_time(data.get("finished_at")),
        )


@dataclass(frozen=True)
class QueueInfo:
    """A queue now: whether it is paused, the concurrency limit in effect (``None``: no limit of its
    own, the environment's holds), the one its tasks declare and a user's override, its rate limit,
    its runs executing and queued, and the tasks of the current version that use it."""

    name: str
    paused: bool = False
    concurrency_limit: int | None = None
    declared_concurrency_limit: int | None = None
    concurrency_limit_override: int | None = None
    executing: int = 0
    queued: int = 0
    tasks: list[str] = field(default_factory=list)
    paused_at: datetime | None = None
    overridden_at: datetime | None = None
    rate_limit: RateLimit | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QueueInfo:
        rate = data.get("rate_limit")
        return cls(
            name=data["name"],
            paused=bool(data.get("paused", False)),
            concurrency_limit=data.get("concurrency_limit"),
            declared_concurrency_limit=data.get("declared_concurrency_limit"),
            concurrency_limit_override=data.get("concurrency_limit_override"),
            executing=int(data.get("executing", 0)),
            queued=int(data.get("queued", 0)),
            tasks=list(data.get("tasks") or []),
            paused_at=_time(data.get("paused_at")),
            overridden_at=_time(data.get("overridden_at")),
            rate_limit=None if rate is None else RateLimit.from_dict(rate),
        )


@dataclass(frozen=True)
class ScheduleInfo:
    """A schedule: the ``task`` it runs at each tick of ``cron`` in ``timezone``; ``kind``
    ``declarative`` (a task declares it in code) or ``imperative`` (made with ``schedules.create``);
    ``next_run_at`` and the ``upcoming`` ticks (none while inactive), ``last_run_at`` its last tick."""

    id: str
    task: str
    cron: str
    timezone: str = "UTC"
    external_id: str | None = None
    deduplication_key: str | None = None
    kind: str = "imperative"
    active: bool = True
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    upcoming: list[datetime] = field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScheduleInfo:
        return cls(
            id=data["id"],
            task=data["task"],
            cron=data["cron"],
            timezone=data.get("timezone", "UTC"),
            external_id=data.get("external_id"),
            deduplication_key=data.get("deduplication_key"),
            kind=data.get("kind", "imperative"),
            active=bool(data.get("active", True)),
            next_run_at=_time(data.get("next_run_at")),
            last_run_at=_time(data.get("last_run_at")),
            upcoming=[t for t in (_time(u) for u in data.get("upcoming") or []) if t is not None],
            created_at=_time(data.get("created_at")),
            updated_at=_time(data.get("updated_at")),
        )


@dataclass(frozen=True)
class WaitpointTokenResult(Generic[T]):
    """What ``wait.for_token`` returns: ``ok`` with the completion ``output``, or ``ok=False`` with a
    ``WaitpointTimeoutError`` in ``error`` when the token timed out."""

    ok: bool
    output: T | None = None
    error: Exception | None = None

    def unwrap(self) -> T:
        if not self.ok:
            raise self.error or WaitpointTimeoutError("the waitpoint token did not complete")
        return self.output  # type: ignore[return-value]


@dataclass(frozen=True)
class AlertInfo:
    """A webhook: ``events`` of the environment (``run.failed``) are POSTed to ``url``, signed with
    ``secret`` (given by ``alerts.create`` and ``alerts.retrieve``, None in listings)."""

    id: str
    url: str
    events: list[str]
    enabled: bool = True
    description: str | None = None
    secret: str | None = field(default=None, repr=False)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AlertInfo:
        return cls(
            id=data["id"],
            url=data["url"],
            events=list(data.get("events") or []),
            enabled=bool(data.get("enabled", True)),
            description=data.get("description"),
            secret=data.get("secret"),
            created_at=_time(data.get("created_at")),
            updated_at=_time(data.get("updated_at")),
        )


@dataclass(frozen=True)
class DeliveryTry:
    """One try of a delivery: the receiver's ``status_code`` (None: no answer) or the ``error``."""

    at: datetime | None
    status_code: int | None
    error: str | None
    duration_ms: float | None


@dataclass(frozen=True)
class AlertDelivery:
    """One event sent to one webhook: ``status`` ``PENDING`` (``next_try_at``), ``DELIVERED`` (a 2xx
    answer) or ``FAILED`` (the tries ran out); ``log`` its tries, oldest first; ``body`` the event
    sent (from ``alerts.delivery`` only)."""

    id: str
    alert_id: str
    event_id: str
    event: str
    status: str
    tries: int
    run_id: str | None = None
    next_try_at: datetime | None = None
    created_at: datetime | None = None
    delivered_at: datetime | None = None
    log: list[DeliveryTry] = field(default_factory=list)
    body: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AlertDelivery:
        return cls(
            id=data["id"],
            alert_id=data["alert_id"],
            event_id=data["event_id"],
            event=data["event"],
            status=data["status"],
            tries=int(data.get("tries", 0)),
            run_id=data.get("run_id"),
            next_try_at=_time(data.get("next_try_at")),
            created_at=_time(data.get("created_at")),
            delivered_at=_time(data.get("delivered_at")),
            log=[
                DeliveryTry(_time(t.get("at")), t.get("status_code"), t.get("error"), t.get("duration_ms"))
                for t in data.get("log") or []
            ],
            body=data.get("body"),
        )
