"""Request bodies of the HTTP API (they also document it in OpenAPI)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hightide.types import MAX_CLAIM_BATCH

Duration = str | float
_SPAN_ID = r"^[0-9a-f]{16}$"


class TriggerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    idempotency_key: str | None = None
    idempotency_key_ttl: Duration | None = Field(default=None, description="e.g. '1h'; default 30 days")
    delay: Duration | None = Field(default=None, description="a duration ('5m') or an ISO 8601 date-time")
    ttl: Duration | None = Field(default=None, description="expire the run if it has not started in time")
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    queue: str | None = None
    concurrency_key: str | None = None
    max_attempts: int | None = None
    priority: float | None = Field(default=None, description="seconds ahead of its queue time")
    machine: str | None = None
    version: str | None = None
    parent_run_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class TriggerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payload: Any = None
    options: TriggerOptions = Field(default_factory=lambda: TriggerOptions())


class BatchItem(TriggerBody):
    task: str | None = Field(default=None, description="the task id; defaults to the task in the URL")


class BatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[BatchItem]


class RescheduleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delay: Duration


class RegisterBody(BaseModel):
    manifest: dict[str, Any]
    worker_id: str | None = Field(default=None, description="lets a waiting claim switch to this version")


_ID = r"^[A-Za-z0-9_.:-]{1,64}$"  # run ids, worker ids, claim ids: nothing a database could refuse
_INT32 = 2**31 - 1
_CLAIM_ID = Field(
    default=None,
    pattern=_ID,
    description="chosen by the worker (a UUID), the same on each try of one claim: a try gets what an earlier try took",
)


class ClaimBody(BaseModel):
    worker_id: str
    version_id: str
    max_runs: int = Field(1, ge=0, le=MAX_CLAIM_BATCH)
    wait: float = Field(10.0, ge=0, le=60)
    claim_id: str | None = _CLAIM_ID


class HeldRun(BaseModel):
    run_id: str
    attempt: int


class HeartbeatBody(BaseModel):
    worker_id: str
    runs: list[HeldRun]
    wait: float = Field(0.0, ge=0, le=60)
    extend: bool = Field(True, description="extend the leases (else only report runs to stop)")


class LogBody(BaseModel):
    run_id: str
    attempt: int
    time: float
    level: str = "info"
    message: str
    attributes: dict[str, Any] = Field(default_factory=dict)
    span_id: str | None = Field(default=None, pattern=_SPAN_ID, description="the span current when it was logged")


class SpanEvent(BaseModel):
    name: str
    time: float
    attributes: dict[str, Any] = Field(default_factory=dict)


class SpanBody(BaseModel):
    """A span recorded inside a run (times in seconds since the epoch)."""

    run_id: str
    attempt: int
    trace_id: str = Field(..., pattern=r"^[0-9a-f]{32}$")
    span_id: str = Field(..., pattern=_SPAN_ID)
    parent_span_id: str | None = Field(default=None, pattern=_SPAN_ID)
    name: str = Field(..., max_length=512)
    kind: str = Field(default="span", max_length=32)
    seq: str | None = Field(default=None, max_length=128, description="a wait's journal position")
    start_time: float
    end_time: float | None = Field(default=None, description="null: a wait that suspended the run, still open")
    status: Literal["UNSET", "OK", "ERROR"] = "UNSET"
    attributes: dict[str, Any] = Field(default_factory=dict)
    events: list[SpanEvent] = Field(default_factory=list, max_length=1000)


class AttemptResult(BaseModel):
    run_id: str
    attempt: int
    ok: bool
    output: Any = None
    error: dict[str, Any] | None = None
    waiting_on: list[str] | None = Field(
        default=None, description="the run suspended: the journal positions it waits on (ok is ignored)"
    )
    execution: int | None = Field(default=None, description="the `execution` of the claim; a stale one is refused")
    record: list[JournalOp] = Field(
        default_factory=list, description="with waiting_on: timers to record with the suspension, in one go"
    )


class ClaimMore(BaseModel):
    version_id: str
    max_runs: int = Field(..., ge=1, le=MAX_CLAIM_BATCH)
    claim_id: str | None = _CLAIM_ID


class ReleasedRun(BaseModel):
    run_id: str = Field(..., pattern=_ID)
    attempt: int = Field(..., ge=0, le=_INT32)
    execution: int | None = Field(
        default=None, ge=0, le=_INT32, description="the `execution` of the claim; a stale one is ignored"
    )


class ReleaseBody(BaseModel):
    worker_id: str = Field(..., pattern=_ID)
    runs: list[ReleasedRun] = Field(default_factory=list, max_length=1000, description="runs given back unfinished")
    claims: list[Annotated[str, Field(pattern=_ID)]] = Field(
        default_factory=list, max_length=100, description="claim ids whose answer the worker never took: their runs"
    )


class CompleteBody(BaseModel):
    worker_id: str
    results: list[AttemptResult] = Field(default_factory=list, max_length=1000)
    logs: list[LogBody] = Field(default_factory=list, max_length=5000, description="appended before the results")
    spans: list[SpanBody] = Field(default_factory=list, max_length=5000, description="stored with the logs")
    claim: ClaimMore | None = Field(default=None, description="claim more runs in the same round trip")


class TokenOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout: Duration | None = Field(default=None, description="e.g. '10m'; the token times out after it")
    tags: list[str] = Field(default_factory=list)
    idempotency_key: str | None = None
    idempotency_key_ttl: Duration | None = Field(default=None, description="e.g. '1h'; default 30 days")


class CompleteTokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: Any = Field(default=None, description="the token's output, returned by wait.for_token")


class JournalOp(BaseModel):
    """One durable operation of a run, at position ``seq``."""

    model_config = ConfigDict(extra="forbid")

    seq: str = Field(..., max_length=128, description="the position, e.g. '3' or 't1/0'")
    kind: str
    name: str = Field("", max_length=256)
    items: list[BatchItem] = Field(default_factory=list, max_length=1000, description="trigger kinds")
    resume_at: float | None = Field(default=None, description="wait: seconds since the epoch")
    idempotency_key: str | None = None
    idempotency_key_ttl: Duration | None = None
    token: TokenOptions | None = Field(default=None, description="create_token")
    token_id: str | None = Field(default=None, description="wait_for_token, complete_token")
    data: Any = Field(default=None, description="complete_token")
    result: Any = Field(default=None, description="step: the JSON value it returned")


class JournalBody(JournalOp):
    """A durable operation recorded by the runner executing ``attempt`` of the run."""

    attempt: int
    execution: int | None = Field(default=None, description="the `execution` of the claim; a stale one is refused")


class ResetKeyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_id: str
    key: str


AttemptResult.model_rebuild()
