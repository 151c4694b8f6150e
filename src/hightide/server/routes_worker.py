"""The worker protocol: register a version, claim runs (long-poll), heartbeat, report results, logs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from hightide.engine import RunEngine
from hightide.engine.runs import AttemptResult
from hightide.errors import NotFoundError
from hightide.server.auth import CurrentEnv
from hightide.server.errors import responses
from hightide.server.models import (
    ClaimBody,
    CompleteBody,
    HeartbeatBody,
    LogBody,
    RegisterBody,
    ReleaseBody,
    SpanBody,
)
from hightide.server.operations import operation
from hightide.server.routing import ApiRoute
from hightide.server.serialize import execution_json
from hightide.store.records import Environment, LogEntry, Run, SpanRecord, Version
from hightide.store.releases import Held

# Every operation takes a body, and may meet a version that is gone or a state that moved on.
router = APIRouter(
    prefix="/api/v1/worker",
    tags=["worker"],
    route_class=ApiRoute,
    responses=responses(401, 404, 409, 413, 422, 500),
)


def _engine(request: Request) -> RunEngine:
    return request.app.state.engine


@router.post("/register", summary="Register a worker version and its task manifest")
async def register(body: RegisterBody, env: CurrentEnv, request: Request) -> dict[str, Any]:
    version = await run_in_threadpool(_engine(request).triggering.register_version, env, body.manifest, body.worker_id)
    lease = _engine(request).settings.lease_seconds
    return {"version_id": version.id, "version": version.version, "lease_seconds": lease}


async def _version(request: Request, env: Environment, version_id: str) -> Version:
    cache: dict[str, Version] = request.app.state.versions
    version = cache.get(version_id)
    if version is None:
        version = await run_in_threadpool(_engine(request).store.environments.get_version, version_id)
        if version is None or version.environment_id != env.id:
            raise NotFoundError(f"worker version {version_id!r} not found; register the worker again")
        cache[version_id] = version
    return version


@router.post("/claim", summary="Claim up to max_runs runs, waiting up to `wait` seconds for work")
async def claim(body: ClaimBody, env: CurrentEnv, request: Request) -> JSONResponse:
    version = await _version(request, env, body.version_id)
    runs = await _engine(request).execution.claim_wait(
        env, body.worker_id, version, body.max_runs, body.wait, request.is_disconnected, body.claim_id
    )
    return JSONResponse({"runs": await _executions(request, env, runs)})


async def _executions(request: Request, env: Environment, runs: list[Run]) -> list[dict[str, Any]]:
    if not runs:
        return []
    journals = await run_in_threadpool(_engine(request).journal.journals, runs)
    return [execution_json(run, env.slug, journals.get(run.id)) for run in runs]


@router.post("/heartbeat", summary="Extend leases; returns the runs the worker must stop")
async def heartbeat(body: HeartbeatBody, env: CurrentEnv, request: Request) -> dict[str, Any]:
    held = [(r.run_id, r.attempt) for r in body.runs]
    stop = await _engine(request).execution.heartbeat(env, body.worker_id, held, body.wait, body.extend)
    return {"stop": stop}


@router.post("/complete", summary="Report attempt outcomes (with logs and spans); optionally claim more runs")
async def complete(body: CompleteBody, env: CurrentEnv, request: Request) -> JSONResponse:
    engine = _engine(request)
    logs, spans = [_log_entry(e) for e in body.logs], [_span_record(s) for s in body.spans]
    now = engine.clock()
    results = [
        AttemptResult(
            r.run_id,
            r.attempt,
            r.ok,
            r.output,
            r.error,
            r.waiting_on,
            r.execution,
            [operation(op, now, r.execution) for op in r.record],
        )
        for r in body.results
    ]
    replies: list[dict[str, Any]] = []
    if results or logs or spans:  # logs and spans go in the transaction of the results
        replies = await run_in_threadpool(engine.execution.report, env, results, body.worker_id, logs, spans)
    runs = []
    if body.claim is not None:
        version = await _version(request, env, body.claim.version_id)
        runs = await run_in_threadpool(
            engine.execution.claim, env, body.worker_id, version, body.claim.max_runs, body.claim.claim_id
        )
    return JSONResponse({"results": replies, "runs": await _executions(request, env, runs)})


@router.post("/release", summary="Give runs back unfinished: QUEUED again at once, no attempt used")
async def release(body: ReleaseBody, env: CurrentEnv, request: Request) -> dict[str, Any]:
    held = [Held(r.run_id, r.attempt, r.execution, r.started) for r in body.runs]
    runs = await run_in_threadpool(_engine(request).execution.release, env, body.worker_id, held, body.claims)
    return {"released": [run.id for run in runs]}


def _log_entry(e: LogBody) -> LogEntry:
    return LogEntry(e.run_id, e.attempt, e.time, e.level, e.message, e.attributes, e.span_id)


def _span_record(s: SpanBody) -> SpanRecord:
    return SpanRecord(**s.model_dump())
