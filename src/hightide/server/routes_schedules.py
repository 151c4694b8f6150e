"""Schedules: create (or update in place by deduplication key), list, retrieve, change, delete,
activate and deactivate; and the timezones a schedule may use."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from hightide.core.cron import timezones
from hightide.engine.runs import RunEngine
from hightide.server.auth import CurrentEnv
from hightide.server.errors import responses
from hightide.server.models import CreateScheduleBody, Id, Kind, Opaque, PageSize, TaskId, UpdateScheduleBody
from hightide.server.routing import ApiRoute
from hightide.server.serialize import schedule_json

router = APIRouter(prefix="/api/v1", tags=["schedules"], route_class=ApiRoute, responses=responses(401, 422, 500))
SchedulePath = Annotated[Id, Path(description="the schedule's id (sched_...)")]


def _engine(request: Request) -> RunEngine:
    return request.app.state.engine


@router.post(
    "/schedules",
    summary="Create a schedule (or, with the deduplication_key of an existing one, update it in place)",
    status_code=201,
    responses={
        **responses(404, 413),
        200: {"description": "an existing schedule with this deduplication_key, updated"},
    },
)
async def create(body: CreateScheduleBody, env: CurrentEnv, request: Request, response: Response) -> dict[str, Any]:
    state, created = await run_in_threadpool(
        _engine(request).schedules.create,
        env,
        body.task,
        body.cron,
        body.timezone,
        body.external_id,
        body.deduplication_key,
    )
    response.status_code = 201 if created else 200
    return schedule_json(state)


@router.get("/schedules", summary="List the environment's schedules, oldest first, with cursor pagination")
async def list_schedules(
    env: CurrentEnv,
    request: Request,
    task: Annotated[TaskId | None, Query()] = None,
    kind: Annotated[Kind | None, Query(description="declarative or imperative")] = None,
    limit: Annotated[PageSize, Query()] = 50,
    cursor: Annotated[Opaque | None, Query()] = None,
) -> dict[str, Any]:
    found, next_cursor = await run_in_threadpool(_engine(request).schedules.list, env, limit, cursor, task, kind)
    return {"data": [schedule_json(s) for s in found], "next_cursor": next_cursor}


@router.get("/schedules/{schedule_id}", summary="Retrieve a schedule with its next runs", responses=responses(404))
async def retrieve(schedule_id: SchedulePath, env: CurrentEnv, request: Request) -> dict[str, Any]:
    return schedule_json(await run_in_threadpool(_engine(request).schedules.get, env, schedule_id))


@router.put(
    "/schedules/{schedule_id}",
    summary="Change an imperative schedule (what is left out stays)",
    responses=responses(404, 409, 413),
)
async def update(
    schedule_id: SchedulePath, body: UpdateScheduleBody, env: CurrentEnv, request: Request
) -> dict[str, Any]:
    state = await run_in_threadpool(
        lambda: _engine(request).schedules.update(
            env, schedule_id, task=body.task, cron=body.cron, timezone=body.timezone, external_id=body.external_id
        )
    )
    return schedule_json(state)


@router.delete("/schedules/{schedule_id}", summary="Delete an imperative schedule", responses=responses(404, 409))
async def delete(schedule_id: SchedulePath, env: CurrentEnv, request: Request) -> dict[str, Any]:
    await run_in_threadpool(_engine(request).schedules.delete, env, schedule_id)
    return {"id": schedule_id, "deleted": True}


@router.post(
    "/schedules/{schedule_id}/activate",
    summary="Activate a schedule: it fires from its next tick (ticks missed meanwhile do not)",
    responses=responses(404),
)
async def activate(schedule_id: SchedulePath, env: CurrentEnv, request: Request) -> dict[str, Any]:
    return schedule_json(await run_in_threadpool(_engine(request).schedules.activate, env, schedule_id))


@router.post("/schedules/{schedule_id}/deactivate", summary="Deactivate a schedule", responses=responses(404))
async def deactivate(schedule_id: SchedulePath, env: CurrentEnv, request: Request) -> dict[str, Any]:
    return schedule_json(await run_in_threadpool(_engine(request).schedules.deactivate, env, schedule_id))


@router.get("/timezones", summary="The IANA timezones a schedule may use")
async def list_timezones(env: CurrentEnv) -> dict[str, Any]:
    return {"data": timezones()}
