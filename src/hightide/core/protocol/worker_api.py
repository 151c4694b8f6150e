"""The HTTP worker API (``/api/v1/worker/...``): each request body and each answer.

The worker builds the requests and reads the answers; the server derives its validated request
bodies (and their OpenAPI schemas) from these classes (``server/worker_bodies.py``), and answers
with these classes' JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from hightide.core.protocol.fields import ClaimId, Count, Doc, Id, Items, JSONObject, Range
from hightide.core.protocol.runs import AttemptResult, Execution, LogRecord, Span
from hightide.types import (
    MAX_CLAIM_BATCH,
    MAX_HEARTBEAT_RUNS,
    MAX_RELEASE_CLAIMS,
    MAX_RELEASE_RUNS,
    MAX_REPORT_RECORDS,
    MAX_REPORT_RESULTS,
)

_CLAIM_ID = Doc("chosen by the worker (a UUID), the same on each try of one claim: a try gets what an earlier try took")
_WAIT = Range(ge=0, le=60)


# -- register ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RegisterRequest:
    manifest: JSONObject
    worker_id: Annotated[Id | None, Doc("lets a waiting claim switch to this version")] = None


@dataclass(frozen=True)
class Registered:
    version_id: str
    version: str
    lease_seconds: float


# -- claim ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClaimRequest:
    worker_id: Id
    version_id: Id
    max_runs: Annotated[int, Range(ge=0, le=MAX_CLAIM_BATCH)] = 1
    wait: Annotated[float, _WAIT] = 10.0
    claim_id: Annotated[ClaimId | None, _CLAIM_ID] = None


@dataclass(frozen=True)
class Claimed:
    runs: tuple[Execution, ...]


# -- heartbeat -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class HeldRun:
    run_id: Id
    attempt: Count


@dataclass(frozen=True)
class HeartbeatRequest:
    worker_id: Id
    runs: Annotated[tuple[HeldRun, ...], Items(MAX_HEARTBEAT_RUNS), Doc("the runs the worker holds")]
    wait: Annotated[float, _WAIT] = 0.0
    extend: Annotated[bool, Doc("extend the leases (else only report runs to stop)")] = True


@dataclass(frozen=True)
class HeartbeatReply:
    stop: tuple[str, ...]
    """The runs the worker must stop: cancelled, or lost to an expired lease."""


# -- complete ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClaimMore:
    version_id: Id
    max_runs: Annotated[int, Range(ge=1, le=MAX_CLAIM_BATCH)]
    claim_id: Annotated[ClaimId | None, _CLAIM_ID] = None


@dataclass(frozen=True)
class CompleteRequest:
    worker_id: Id
    results: Annotated[tuple[AttemptResult[JSONObject], ...], Items(MAX_REPORT_RESULTS)] = ()
    logs: Annotated[tuple[LogRecord, ...], Items(MAX_REPORT_RECORDS), Doc("appended before the results")] = ()
    spans: Annotated[tuple[Span, ...], Items(MAX_REPORT_RECORDS), Doc("stored with the logs")] = ()
    claim: Annotated[ClaimMore | None, Doc("claim more runs in the same round trip")] = None


@dataclass(frozen=True)
class ResultReply:
    """The answer to one result: accepted with the run's new ``status``, or refused (``code``,
    ``message``: a stale result, a suspension the server could not take)."""

    SPARSE = True  # as it always crossed: {run_id, accepted, status} or {run_id, accepted, code, message}

    run_id: str
    accepted: bool
    status: str | None = None
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class CompleteReply:
    results: tuple[ResultReply, ...]
    """One per result, in order."""
    runs: tuple[Execution, ...]
    """What the claim (``claim``) took."""


# -- release -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReleasedRun:
    run_id: Id
    attempt: Count
    execution: Annotated[Count | None, Doc("the `execution` of the claim; a stale one is ignored")] = None
    started: Annotated[
        bool, Doc("false: the task's code never started (prefetched): the run is as if never claimed")
    ] = True


@dataclass(frozen=True)
class ReleaseRequest:
    worker_id: Id
    runs: Annotated[tuple[ReleasedRun, ...], Items(MAX_RELEASE_RUNS), Doc("runs given back unfinished")] = ()
    claims: Annotated[
        tuple[ClaimId, ...], Items(MAX_RELEASE_CLAIMS), Doc("claim ids whose answer the worker never took: their runs")
    ] = ()


@dataclass(frozen=True)
class ReleaseReply:
    released: tuple[str, ...]
    """The runs released (not those that had moved on)."""


# -- final hooks owed ------------------------------------------------------------------------------
@dataclass(frozen=True)
class OwedHooksRequest:
    """Take the final hooks (``on_failure``, ``on_complete``) of runs that ended ``CRASHED`` or
    ``TIMED_OUT`` without them: the worker that ran them died, or did not run them in time."""

    worker_id: Id
    version_id: Id
    max_runs: Annotated[int, Range(ge=1, le=MAX_CLAIM_BATCH)] = 4


@dataclass(frozen=True)
class OwedHooks:
    execution: Execution
    """The run's last attempt, as it was claimed."""
    error: JSONObject
    """The failure the hooks are given."""


@dataclass(frozen=True)
class OwedHooksReply:
    hooks: tuple[OwedHooks, ...]
    """Leased to this worker for a minute; another worker gets them after that unless ``hooks/done``."""


@dataclass(frozen=True)
class HooksDoneRequest:
    worker_id: Id
    run_ids: Annotated[tuple[Id, ...], Items(MAX_RELEASE_RUNS), Doc("the runs whose final hooks ran")]


@dataclass(frozen=True)
class HooksDoneReply:
    done: tuple[str, ...]
