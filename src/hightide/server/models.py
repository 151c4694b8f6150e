"""Request bodies of the HTTP API (they also document it in OpenAPI)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hightide.types import MAX_CLAIM_BATCH

Duration = str | float


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


class ClaimBody(BaseModel):
    worker_id: str
    version_id: str
    max_runs: int = Field(1, ge=0, le=MAX_CLAIM_BATCH)
    wait: float = Field(10.0, ge=0, le=60)


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


class AttemptResult(BaseModel):
    run_id: str
    attempt: int
    ok: bool
    output: Any = None
    error: dict[str, Any] | None = None


class ClaimMore(BaseModel):
    version_id: str
    max_runs: int = Field(..., ge=1, le=MAX_CLAIM_BATCH)


class CompleteBody(BaseModel):
    worker_id: str
    results: list[AttemptResult] = Field(default_factory=list, max_length=1000)
    logs: list[LogBody] = Field(default_factory=list, max_length=5000, description="appended before the results")
    claim: ClaimMore | None = Field(default=None, description="claim more runs in the same round trip")
