"""Durable execution over HTTP: runners record journal entries; apps and webhooks use tokens."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool

from hightide.engine.runs import RunEngine
from hightide.server.auth import CurrentEnv
from hightide.server.errors import responses
from hightide.server.limits import parse_json
from hightide.server.models import CompleteTokenBody, Id, JournalBody, Opaque, PageSize, Tag, TokenOptions
from hightide.server.operations import operation, token_spec, trace_parent
from hightide.server.routing import ApiRoute
from hightide.server.serialize import token_json
from hightide.store.records import Waitpoint

router = APIRouter(prefix="/api/v1", tags=["waitpoints"], route_class=ApiRoute, responses=responses(401, 422, 500))
IdPath = Annotated[Id, Path()]


def _engine(request: Request) -> RunEngine:
    return request.app.state.engine


def _token_json(request: Request, token: Waitpoint) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/")
    return token_json(token, base + _engine(request).tokens.token_callback_path(token.id))


@router.post(
    "/runs/{run_id}/journal",
    summary="Record a durable operation of an executing run (runners)",
    responses=responses(404, 409, 413),
)
async def record(run_id: IdPath, body: JournalBody, env: CurrentEnv, request: Request) -> dict[str, Any]:
    engine = _engine(request)
    op = operation(body, engine.clock(), body.execution, trace_parent(request))
    return await run_in_threadpool(engine.journal.record, env, run_id, body.attempt, op)


@router.post("/waitpoints/tokens", summary="Create a waitpoint token", responses=responses(409, 413))
async def create_token(body: TokenOptions, env: CurrentEnv, request: Request) -> dict[str, Any]:
    token, cached = await run_in_threadpool(_engine(request).tokens.create_token, env, token_spec(body))
    return {**_token_json(request, token), "is_cached": cached}


@router.get("/waitpoints/tokens", summary="List waitpoint tokens, newest first")
async def list_tokens(
    env: CurrentEnv,
    request: Request,
    status: Annotated[list[Opaque] | None, Query()] = None,
    tag: Annotated[Tag | None, Query()] = None,
    limit: Annotated[PageSize, Query()] = 50,
    cursor: Annotated[Opaque | None, Query()] = None,
) -> dict[str, Any]:
    statuses = tuple(s for value in status or [] for s in value.split(",") if s)
    tokens, next_cursor = await run_in_threadpool(
        _engine(request).tokens.list_tokens, env, statuses, tag, limit, cursor
    )
    return {"data": [_token_json(request, t) for t in tokens], "next_cursor": next_cursor}


@router.get("/waitpoints/tokens/{token_id}", summary="Retrieve a waitpoint token", responses=responses(404))
async def retrieve_token(token_id: IdPath, env: CurrentEnv, request: Request) -> dict[str, Any]:
    token = await run_in_threadpool(_engine(request).tokens.get_token, env, token_id)
    return _token_json(request, token)


@router.post(
    "/waitpoints/tokens/{token_id}/complete",
    summary="Complete a waitpoint token with data",
    responses=responses(404, 409, 413),
)
async def complete_token(
    token_id: IdPath, body: CompleteTokenBody, env: CurrentEnv, request: Request
) -> dict[str, Any]:
    token = await run_in_threadpool(_engine(request).tokens.complete_token, env, token_id, body.data)
    return _token_json(request, token)


@router.post(
    "/waitpoints/tokens/{token_id}/callback/{signature}",
    summary="Complete a token from a webhook: the JSON body is its output (no API key: the URL is signed)",
    responses=responses(404, 409, 413),
    openapi_extra={"requestBody": {"required": False, "content": {"application/json": {"schema": {}}}}},
)
async def callback(token_id: IdPath, signature: Annotated[Opaque, Path()], request: Request) -> dict[str, Any]:
    engine = _engine(request)
    # The signature stands in for a key, so it is checked before the body is read.
    await run_in_threadpool(engine.tokens.check_token_signature, token_id, signature)
    raw = await request.body()  # streamed under the server's byte limit
    data = parse_json(raw) if raw.strip() else None
    token = await run_in_threadpool(engine.tokens.complete_token_signed, token_id, signature, data)
    return {"id": token.id, "status": token.status}
