"""The worker protocol: register a version, claim runs (long-poll), heartbeat, report results, logs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from hightide.core import protocol
from hightide.core.protocol import from_json, to_json
from hightide.engine.runs import RunEngine
from hightide.errors import NotFoundError
from hightide.server.auth import CurrentEnv
from hightide.server.errors import responses
from hightide.server.operations import operation
from hightide.server.routing import ApiRoute
from hightide.server.serialize import execution
from hightide.server.worker_bodies import (
    ClaimBody,
    CompleteBody,
    HeartbeatBody,
    HooksDoneBody,
    OwedHooksBody,
    RegisterBody,
    ReleaseBody,
)
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
    req = from_json(protocol.RegisterRequest, body)
    version = await run_in_threadpool(_engine(request).triggering.register_version, env, req.manifest, req.worker_id)
    lease = _engine(request).settings.lease_seconds
    return to_json(protocol.Registered(version.id, version.version, lease))


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
    req = from_json(protocol.ClaimRequest, body)
    version = await _version(request, env, req.version_id)
    runs = await _engine(request).execution.claim_wait(
        env, req.worker_id, version, req.max_runs, req.wait, request.is_disconnected, req.claim_id
    )
    return JSONResponse(to_json(protocol.Claimed(await _executions(request, env, runs))))


async def _executions(request: Request, env: Environment, runs: list[Run]) -> tuple[protocol.Execution, ...]:
    if not runs:
        return ()
    journals = await run_in_threadpool(_engine(request).journal.journals, runs)
    return tuple(execution(run, env.slug, journals.get(run.id)) for run in runs)


@router.post("/heartbeat", summary="Extend leases; returns the runs the worker must stop")
async def heartbeat(body: HeartbeatBody, env: CurrentEnv, request: Request) -> dict[str, Any]:
    req = from_json(protocol.HeartbeatRequest, body)
    held = [(r.run_id, r.attempt) for r in req.runs]
    stop = await _engine(request).execution.heartbeat(env, req.worker_id, held, req.wait, req.extend)
    return to_json(protocol.HeartbeatReply(tuple(stop)))


@router.post("/complete", summary="Report attempt outcomes (with logs and spans); optionally claim more runs")
async def complete(body: CompleteBody, env: CurrentEnv, request: Request) -> JSONResponse:
    engine = _engine(request)
    req = from_json(protocol.CompleteRequest, body)
    logs, spans = [_log_entry(e) for e in req.logs], [_span_record(s) for s in req.spans]
    now = engine.clock()
    # The operations a suspension records, read from the journal API's model of them.
    results = [
        protocol.AttemptResult(
            res.run_id,
            res.attempt,
            res.ok,
            res.output,
            res.error,
            res.waiting_on,
            res.execution,
            tuple(operation(op, now, res.execution) for op in model.record),
            res.retry,
        )
        for res, model in zip(req.results, body.results, strict=True)
    ]
    replies: list[protocol.ResultReply] = []
    if results or logs or spans:  # logs and spans go in the transaction of the results
        replies = await run_in_threadpool(engine.execution.report, env, results, req.worker_id, logs, spans)
    runs = []
    if req.claim is not None:
        version = await _version(request, env, req.claim.version_id)
        runs = await run_in_threadpool(
            engine.execution.claim, env, req.worker_id, version, req.claim.max_runs, req.claim.claim_id
        )
    reply = protocol.CompleteReply(tuple(replies), await _executions(request, env, runs))
    return JSONResponse(to_json(reply))


@router.post("/release", summary="Give runs back unfinished: QUEUED again at once, no attempt used")
async def release(body: ReleaseBody, env: CurrentEnv, request: Request) -> dict[str, Any]:
    req = from_json(protocol.ReleaseRequest, body)
    held = [Held(r.run_id, r.attempt, r.execution, r.started) for r in req.runs]
    runs = await run_in_threadpool(_engine(request).execution.release, env, req.worker_id, held, list(req.claims))
    return to_json(protocol.ReleaseReply(tuple(run.id for run in runs)))


@router.post("/hooks", summary="Take the final hooks owed to runs that crashed or timed out without them")
async def owed_hooks(body: OwedHooksBody, env: CurrentEnv, request: Request) -> JSONResponse:
    req = from_json(protocol.OwedHooksRequest, body)
    version = await _version(request, env, req.version_id)
    runs = await run_in_threadpool(_engine(request).execution.owed_hooks, env, version, req.max_runs)
    executions = await _executions(request, env, runs)
    owed = tuple(protocol.OwedHooks(e, run.error or {}) for e, run in zip(executions, runs, strict=True))
    return JSONResponse(to_json(protocol.OwedHooksReply(owed)))


@router.post("/hooks/done", summary="Say which runs' final hooks ran: they are no longer owed")
async def hooks_done(body: HooksDoneBody, env: CurrentEnv, request: Request) -> dict[str, Any]:
    req = from_json(protocol.HooksDoneRequest, body)
    done = await run_in_threadpool(_engine(request).execution.hooks_done, env, list(req.run_ids))
    return to_json(protocol.HooksDoneReply(tuple(done)))


def _log_entry(e: protocol.LogRecord) -> LogEntry:
    return LogEntry(e.run_id, e.attempt, e.time, e.level, e.message, e.attributes, e.span_id)


def _span_record(s: protocol.Span) -> SpanRecord:
    return SpanRecord(
        trace_id=s.trace_id,
        span_id=s.span_id,
        parent_span_id=s.parent_span_id,
        run_id=s.run_id,
        attempt=s.attempt,
        name=s.name,
        kind=s.kind,
        start_time=s.start_time,
        end_time=s.end_time,
        status=s.status,
        attributes=s.attributes,
        events=[to_json(e) for e in s.events],
        seq=s.seq,
    )
