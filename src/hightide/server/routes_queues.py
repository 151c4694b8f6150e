"""Queues: their runs now; pause and resume; override or reset the concurrency limit.

A queue's name may hold ``/`` (a task's own queue is ``task/<id>``), so it is the rest of the path:
``GET /api/v1/queues/task/email``, ``POST /api/v1/queues/task/email/pause``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool

from hightide.engine.queues import QueueState
from hightide.engine.runs import RunEngine
from hightide.server.auth import CurrentEnv
from hightide.server.errors import responses
from hightide.server.models import ConcurrencyLimitBody, Name
from hightide.server.routing import ApiRoute
from hightide.server.serialize import queue_json

router = APIRouter(prefix="/api/v1", tags=["queues"], route_class=ApiRoute, responses=responses(401, 422, 500))
QueuePath = Annotated[Name, Path(description="the queue's name, '/' included (a task's own: task/<id>)")]


def _engine(request: Request) -> RunEngine:
    return request.app.state.engine


@router.get("/queues", summary="List the environment's queues with their runs executing and queued now")
async def list_queues(env: CurrentEnv, request: Request) -> dict[str, Any]:
    found: list[QueueState] = await run_in_threadpool(_engine(request).queues.list, env)
    return {"data": [queue_json(q) for q in found]}


# The actions come before retrieve: its path would take ".../pause" as part of a queue's name.
@router.post("/queues/{name:path}/pause", summary="Pause a queue: its runs stop starting", responses=responses(404))
async def pause(name: QueuePath, env: CurrentEnv, request: Request) -> dict[str, Any]:
    queue = await run_in_threadpool(_engine(request).queues.pause, env, name)
    return queue_json(queue)


@router.post("/queues/{name:path}/resume", summary="Resume a paused queue", responses=responses(404))
async def resume(name: QueuePath, env: CurrentEnv, request: Request) -> dict[str, Any]:
    queue = await run_in_threadpool(_engine(request).queues.resume, env, name)
    return queue_json(queue)


@router.put(
    "/queues/{name:path}/concurrency-limit",
    summary="Override a queue's concurrency limit (a new version keeps the override)",
    responses=responses(404, 413),
)
async def override_limit(
    name: QueuePath, body: ConcurrencyLimitBody, env: CurrentEnv, request: Request
) -> dict[str, Any]:
    queue = await run_in_threadpool(
        _engine(request).queues.override_concurrency_limit, env, name, body.concurrency_limit
    )
    return queue_json(queue)


@router.delete(
    "/queues/{name:path}/concurrency-limit",
    summary="Reset a queue's concurrency limit to the one its tasks declare",
    responses=responses(404),
)
async def reset_limit(name: QueuePath, env: CurrentEnv, request: Request) -> dict[str, Any]:
    queue = await run_in_threadpool(_engine(request).queues.reset_concurrency_limit, env, name)
    return queue_json(queue)


@router.get("/queues/{name:path}", summary="Retrieve a queue", responses=responses(404))
async def retrieve(name: QueuePath, env: CurrentEnv, request: Request) -> dict[str, Any]:
    queue = await run_in_threadpool(_engine(request).queues.get, env, name)
    return queue_json(queue)
