"""Triggering and run control: what apps, the SDK and the CLI call."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool

from hightide.core.states import RunStatus
from hightide.engine.options import TriggerItem, batch_specs
from hightide.engine.runs import RunEngine
from hightide.errors import NotFoundError, ValidationError
from hightide.server.auth import CurrentEnv
from hightide.server.errors import responses
from hightide.server.models import (
    BatchBody,
    BulkBody,
    Count,
    Id,
    Opaque,
    PageSize,
    RescheduleBody,
    ResetKeyBody,
    Tag,
    TaskId,
    TriggerBody,
)
from hightide.server.operations import trace_parent, trigger_items
from hightide.server.public_access import CurrentReader, check_may_name_run, check_may_read_run
from hightide.server.routing import ApiRoute
from hightide.server.serialize import bulk_json, log_json, retrieved_json, run_json, trace_json
from hightide.store.records import Run, RunFilter

router = APIRouter(prefix="/api/v1", tags=["runs"], route_class=ApiRoute, responses=responses(401, 422, 500))
TaskPath = Annotated[TaskId, Path()]
RunPath = Annotated[Id, Path()]


def _engine(request: Request) -> RunEngine:
    return request.app.state.engine


@router.post("/tasks/{task_id}/trigger", summary="Trigger a run of a task", responses=responses(404, 409, 413))
async def trigger(task_id: TaskPath, body: TriggerBody, env: CurrentEnv, request: Request) -> dict[str, Any]:
    [run] = await _trigger(task_id, [(None, body.payload, body.options.as_dict())], env, request, single=True)
    return run


@router.post(
    "/tasks/batch", summary="Trigger up to 1,000 runs atomically (any tasks)", responses=responses(404, 409, 413)
)
async def batch_trigger(body: BatchBody, env: CurrentEnv, request: Request) -> dict[str, Any]:
    return {"runs": await _trigger(None, trigger_items(body.items), env, request)}


@router.post(
    "/tasks/{task_id}/batch",
    summary="Trigger up to 1,000 runs of one task atomically",
    responses=responses(404, 409, 413),
)
async def batch_trigger_task(task_id: TaskPath, body: BatchBody, env: CurrentEnv, request: Request) -> dict[str, Any]:
    return {"runs": await _trigger(task_id, trigger_items(body.items), env, request)}


async def _trigger(
    task_id: str | None, items: list[TriggerItem], env: CurrentEnv, request: Request, single: bool = False
) -> list[dict[str, Any]]:
    """Every trigger route: a batch (a single trigger is a batch of one), created atomically."""
    engine = _engine(request)
    specs = batch_specs(task_id, items, engine.clock(), trace_parent(request), single=single)

    def trigger() -> list[dict[str, Any]]:
        return [
            {
                "id": run.id,
                "is_cached": cached,
                "task_id": run.task_id,
                "status": run.status.value,
                "public_access_token": engine.public_tokens.for_run(env, run.id),  # reads the run for 1 h
            }
            for run, cached in engine.triggering.trigger(env, specs)
        ]

    return await run_in_threadpool(trigger)


@router.get(
    "/runs/{run_id}",
    summary="Retrieve a run with its attempts and what it waits for (a secret key or a public access token)",
    responses=responses(403, 404),
)
async def retrieve(run_id: RunPath, reader: CurrentReader, request: Request) -> dict[str, Any]:
    engine = _engine(request)
    base = str(request.base_url).rstrip("/")
    check_may_name_run(reader, run_id)

    def load() -> dict[str, Any]:
        try:
            found: Run | None = engine.core.get_run(reader.environment, run_id)
        except NotFoundError:
            found = None
        run = check_may_read_run(reader, run_id, found)
        waits = engine.tokens.open_waitpoints(reader.environment, run.id) if run.status is RunStatus.WAITING else []
        attempts = engine.core.attempts(run)
        return retrieved_json(run, attempts, waits, lambda wp_id: base + engine.tokens.token_callback_path(wp_id))

    return await run_in_threadpool(load)


def _timestamp(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValidationError("from/to: date-times need a timezone (e.g. 'Z')", details={"field": "from"})
    try:
        return value.timestamp()
    except (OverflowError, ValueError) as exc:  # year 1 or 9999 shifted past the calendar by its offset
        raise ValidationError(f"from/to: {value.isoformat()} is not a time", details={"field": "from"}) from exc


@router.get("/runs", summary="List runs, newest first, with cursor pagination")
async def list_runs(
    env: CurrentEnv,
    request: Request,
    status: Annotated[list[Opaque] | None, Query()] = None,
    task: Annotated[list[TaskId] | None, Query()] = None,
    tag: Annotated[Tag | None, Query()] = None,
    created_from: Annotated[datetime | None, Query(alias="from")] = None,
    created_to: Annotated[datetime | None, Query(alias="to")] = None,
    parent: Annotated[Id | None, Query()] = None,
    limit: Annotated[PageSize, Query()] = 50,
    cursor: Annotated[Opaque | None, Query()] = None,
) -> dict[str, Any]:
    engine = _engine(request)
    statuses = tuple(s for value in status or [] for s in value.split(",") if s)
    flt = RunFilter(
        statuses=statuses,
        task_ids=tuple(task or ()),
        tag=tag,
        created_from=_timestamp(created_from),
        created_to=_timestamp(created_to),
        parent_run_id=parent,
    )
    runs, next_cursor = await run_in_threadpool(engine.core.list_runs, env, flt, limit, cursor)
    return {"data": [run_json(run) for run in runs], "next_cursor": next_cursor}


@router.post("/runs/{run_id}/cancel", summary="Cancel a run and its unfinished children", responses=responses(404, 409))
async def cancel(run_id: RunPath, env: CurrentEnv, request: Request) -> dict[str, Any]:
    run = await run_in_threadpool(_engine(request).control.cancel, env, run_id)
    return run_json(run)


@router.post(
    "/runs/{run_id}/replay", summary="Trigger a new run with the same payload", responses=responses(404, 409, 413)
)
async def replay(run_id: RunPath, env: CurrentEnv, request: Request) -> dict[str, Any]:
    engine = _engine(request)
    run = await run_in_threadpool(engine.control.replay, env, run_id)
    token = await run_in_threadpool(engine.public_tokens.for_run, env, run.id)
    return {
        "id": run.id,
        "is_cached": False,
        "task_id": run.task_id,
        "status": run.status.value,
        "public_access_token": token,
    }


@router.post(
    "/runs/{run_id}/reschedule", summary="Change the delay of a DELAYED run", responses=responses(404, 409, 413)
)
async def reschedule(run_id: RunPath, body: RescheduleBody, env: CurrentEnv, request: Request) -> dict[str, Any]:
    run = await run_in_threadpool(_engine(request).control.reschedule, env, run_id, body.delay)
    return run_json(run)


@router.get("/runs/{run_id}/logs", summary="The run's log records, oldest first", responses=responses(404))
async def logs(
    run_id: RunPath, env: CurrentEnv, request: Request, after: Annotated[Count, Query()] = 0
) -> dict[str, Any]:
    entries = await run_in_threadpool(_engine(request).traces.logs, env, run_id, after)
    return {"data": [log_json(i, e) for i, e in entries]}


@router.get(
    "/runs/{run_id}/trace",
    summary="The trace a run belongs to: runs, attempts and spans, oldest first",
    responses=responses(404),
)
async def trace(run_id: RunPath, env: CurrentEnv, request: Request) -> dict[str, Any]:
    return trace_json(await run_in_threadpool(_engine(request).traces.trace, env, run_id))


@router.post("/idempotency-keys/reset", summary="Forget an idempotency key of a task", responses=responses(404, 413))
async def reset_idempotency_key(body: ResetKeyBody, env: CurrentEnv, request: Request) -> dict[str, Any]:
    reset = await run_in_threadpool(_engine(request).triggering.reset_idempotency_key, env, body.task_id, body.key)
    return {"task_id": body.task_id, "key": body.key, "reset": reset}


# -- bulk actions ------------------------------------------------------------------------------
@router.post(
    "/bulk-actions",
    status_code=202,
    summary="Cancel or replay many runs (by ids or a filter) in the background; returns at once with its progress",
    responses=responses(413),
)
async def create_bulk_action(body: BulkBody, env: CurrentEnv, request: Request) -> dict[str, Any]:
    flt = None
    if body.filter is not None:
        f = body.filter
        flt = RunFilter(
            statuses=tuple(f.status),
            task_ids=tuple(f.task),
            tag=f.tag,
            version=f.version,
            created_from=_timestamp(f.created_from),
            created_to=_timestamp(f.created_to),
        )
    action = await run_in_threadpool(_engine(request).bulk.create, env, body.action, ids=body.ids, flt=flt)
    return bulk_json(action)


@router.get("/bulk-actions", summary="List bulk actions, newest first")
async def list_bulk_actions(
    env: CurrentEnv,
    request: Request,
    limit: Annotated[PageSize, Query()] = 20,
    cursor: Annotated[Opaque | None, Query()] = None,
) -> dict[str, Any]:
    found, next_cursor = await run_in_threadpool(_engine(request).bulk.list, env, limit, cursor)
    return {"data": [bulk_json(a) for a in found], "next_cursor": next_cursor}


@router.get("/bulk-actions/{bulk_id}", summary="Retrieve a bulk action and its progress", responses=responses(404))
async def retrieve_bulk_action(bulk_id: RunPath, env: CurrentEnv, request: Request) -> dict[str, Any]:
    return bulk_json(await run_in_threadpool(_engine(request).bulk.get, env, bulk_id))


@router.post(
    "/bulk-actions/{bulk_id}/abort", summary="Stop a bulk action after its current page", responses=responses(404)
)
async def abort_bulk_action(bulk_id: RunPath, env: CurrentEnv, request: Request) -> dict[str, Any]:
    return bulk_json(await run_in_threadpool(_engine(request).bulk.abort, env, bulk_id))
