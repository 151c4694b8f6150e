"""The worker protocol: register a version, claim runs (long-poll), heartbeat, report results, logs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from hightide.core.failures import Failure, FailureKind
from hightide.engine import RunEngine
from hightide.errors import ConflictError, HightideError, NotFoundError
from hightide.server.auth import CurrentEnv
from hightide.server.models import ClaimBody, CompleteBody, HeartbeatBody, LogsBody, RegisterBody
from hightide.server.serialize import execution_json
from hightide.store.records import Environment, LogEntry, Version

router = APIRouter(prefix="/api/v1/worker", tags=["worker"])


def _engine(request: Request) -> RunEngine:
    return request.app.state.engine


@router.post("/register", summary="Register a worker version and its task manifest")
async def register(body: RegisterBody, env: CurrentEnv, request: Request) -> dict[str, Any]:
    version = await run_in_threadpool(_engine(request).register_version, env, body.manifest, body.worker_id)
    lease = _engine(request).settings.lease_seconds
    return {"version_id": version.id, "version": version.version, "lease_seconds": lease}


async def _version(request: Request, env: Environment, version_id: str) -> Version:
    cache: dict[str, Version] = request.app.state.versions
    version = cache.get(version_id)
    if version is None:
        version = await run_in_threadpool(_engine(request).store.get_version, version_id)
        if version is None or version.environment_id != env.id:
            raise NotFoundError(f"worker version {version_id!r} not found; register the worker again")
        cache[version_id] = version
    return version


@router.post("/claim", summary="Claim up to max_runs runs, waiting up to `wait` seconds for work")
async def claim(body: ClaimBody, env: CurrentEnv, request: Request) -> dict[str, Any]:
    version = await _version(request, env, body.version_id)
    runs = await _engine(request).claim_wait(
        env, body.worker_id, version, body.max_runs, body.wait, request.is_disconnected
    )
    return {"runs": [execution_json(run, env.slug) for run in runs]}


@router.post("/heartbeat", summary="Extend leases; returns the runs the worker must stop")
async def heartbeat(body: HeartbeatBody, env: CurrentEnv, request: Request) -> dict[str, Any]:
    held = [(r.run_id, r.attempt) for r in body.runs]
    stop = await _engine(request).heartbeat(env, body.worker_id, held, body.wait, body.extend)
    return {"stop": stop}


@router.post("/complete", summary="Report the outcome of attempts (success or failure)")
async def complete(body: CompleteBody, env: CurrentEnv, request: Request) -> dict[str, Any]:
    engine = _engine(request)

    def apply() -> list[dict[str, Any]]:
        out = []
        for result in body.results:
            try:
                if result.ok:
                    run = engine.complete(env, result.run_id, result.attempt, result.output)
                else:
                    failure = Failure.from_dict(result.error or {"name": "Error", "kind": FailureKind.ERROR})
                    run = engine.fail(env, result.run_id, result.attempt, failure)
                out.append({"run_id": result.run_id, "accepted": True, "status": run.status.value})
            except (ConflictError, NotFoundError) as exc:
                out.append({"run_id": result.run_id, "accepted": False, "code": exc.code, "message": exc.message})
            except HightideError as exc:  # e.g. an output over the size limit: the attempt fails instead
                failure = Failure(name=type(exc).__name__, message=exc.message, kind=FailureKind.SYSTEM)
                run = engine.fail(env, result.run_id, result.attempt, failure)
                out.append({"run_id": result.run_id, "accepted": True, "status": run.status.value})
        return out

    return {"results": await run_in_threadpool(apply)}


@router.post("/logs", summary="Append run log records")
async def logs(body: LogsBody, env: CurrentEnv, request: Request) -> dict[str, Any]:
    entries = [LogEntry(e.run_id, e.attempt, e.time, e.level, e.message, e.attributes) for e in body.entries]
    await run_in_threadpool(_engine(request).append_logs, env, entries)
    return {"accepted": len(entries)}
