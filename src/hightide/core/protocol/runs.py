"""What a worker is handed to execute, and what it reports back: shared by the pipe between a
supervisor and its runners and by the HTTP worker API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, Literal, TypeVar

from hightide.core.machines import DEFAULT_MACHINE
from hightide.core.protocol.fields import (
    Count,
    Doc,
    Id,
    Items,
    JSONObject,
    Kind,
    Level,
    Message,
    Seq,
    SpanId,
    SpanName,
    Time,
    TraceId,
)
from hightide.core.retry import RetryDecision

R = TypeVar("R")


@dataclass(frozen=True)
class AttemptSpan:
    """Where a runner's spans go: the run's trace, and the span of the attempt being executed."""

    trace_id: str
    span_id: str


@dataclass(frozen=True, kw_only=True)
class Execution:
    """One attempt of a run to execute, as a claim hands it out; with its journal, to replay it."""

    journal: tuple[JSONObject, ...] = ()
    execution: int | None = None  # the claim's number: a result of another one is refused
    run_id: str
    task_id: str
    attempt: int
    payload: Any = None
    tags: tuple[str, ...] = ()
    metadata: JSONObject = field(default_factory=dict)
    queue: str | None = None
    max_attempts: int = 1
    max_duration: float | None = None  # seconds
    created_at: str | None = None  # ISO 8601
    started_at: str | None = None
    parent_run_id: str | None = None
    root_run_id: str | None = None
    environment: str = "dev"
    version: str | None = None
    trace: AttemptSpan | None = None
    machine: str = DEFAULT_MACHINE  # the preset this attempt runs on: its runner's memory limit
    retry_machine: str | None = None  # where an out-of-memory failure of it retries (None: it is final)


@dataclass(frozen=True, kw_only=True)
class LogRecord:
    """A log line of a run (``print``, ``logging``, ``logger``)."""

    run_id: Id
    attempt: Count
    time: Time
    level: Level = "info"
    message: Message
    attributes: JSONObject = field(default_factory=dict)
    span_id: Annotated[SpanId | None, Doc("the span current when it was logged")] = None


@dataclass(frozen=True)
class SpanEvent:
    name: SpanName
    time: Time
    attributes: JSONObject = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Span:
    """A span recorded inside a run (times in seconds since the epoch)."""

    run_id: Id
    attempt: Count
    trace_id: TraceId
    span_id: SpanId
    parent_span_id: SpanId | None = None
    name: SpanName
    kind: Kind = "span"
    seq: Annotated[Seq | None, Doc("a wait's journal position")] = None
    start_time: Time
    end_time: Annotated[Time | None, Doc("null: a wait that suspended the run, still open")] = None
    status: Literal["UNSET", "OK", "ERROR"] = "UNSET"
    attributes: JSONObject = field(default_factory=dict)
    events: Annotated[tuple[SpanEvent, ...], Items(1000)] = ()


@dataclass(frozen=True)
class AttemptResult(Generic[R]):
    """The outcome of one attempt: its output (``ok``), its failure (``error``, a serialised
    failure), or a suspension (``waiting_on``)."""

    # ``record``: journal operations as JSON on the wire (R = JSONObject), the engine's
    # ``Operation`` values once the server has read them.

    run_id: Id
    attempt: Count
    ok: bool
    output: Any = None
    error: JSONObject | None = None
    waiting_on: Annotated[
        tuple[Seq, ...] | None, Doc("the run suspended: the journal positions it waits on (ok is ignored)")
    ] = None
    execution: Annotated[Count | None, Doc("the `execution` of the claim; a stale one is refused")] = None
    record: Annotated[tuple[R, ...], Doc("with waiting_on: timers to record with the suspension, in one go")] = ()
    retry: Annotated[
        RetryDecision | None, Doc("a failure: the task's catch_error decision (null: the retry policy decides)")
    ] = None
