"""Durable execution over HTTP: runners record journal entries; apps and webhooks use tokens."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool

from hightide.engine import RunEngine
from hightide.errors import ValidationError
from hightide.server.auth import CurrentEnv
from hightide.server.models import CompleteTokenBody, Id, JournalBody, Opaque, PageSize, Tag, TokenOptions
from hightide.server.operations import operation, token_spec, trace_parent
from hightide.server.serialize import token_json
from hightide.store.records import Waitpoint

router = APIRouter(prefix="/api/v1", tags=["waitpoints"])
IdPath = Annotated[Id, Path()]


def _engine(request: Request) -> RunEngine:
    return request.app.state.engine


def _token_json(request: Request, token: Waitpoint) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/")
    return token_json(token, base + _engine(request).token_callback_path(token.id))


@router.post("/runs/{run_id}/journal", summary="Record a durable operation of an executing run (runners)")
async def record(run_id: IdPath, body: JournalBody, env: CurrentEnv, request: Request) -> dict[str, Any]:
    engine = _engine(request)
    op = operation(body, engine.clock(), body.execution, trace_parent(request))
    return await run_in_threadpool(engine.record, env, run_id, body.attempt, op)


@router.post("/waitpoints/tokens", summary="Create a waitpoint token")
async def create_token(body: TokenOptions, env: CurrentEnv, request: Request) -> dict[str, Any]:
    token, cached = await run_in_threadpool(_engine(request).create_token, env, token_spec(body))
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
    tokens, next_cursor = await run_in_threadpool(_engine(request).list_tokens, env, statuses, tag, limit, cursor)
    return {"data": [_token_json(request, t) for t in tokens], "next_cursor": next_cursor}


@router.get("/waitpoints/tokens/{token_id}", summary="Retrieve a waitpoint token")
async def retrieve_token(token_id: IdPath, env: CurrentEnv, request: Request) -> dict[str, Any]:
    token = await run_in_threadpool(_engine(request).get_token, env, token_id)
    return _token_json(request, token)


@router.post("/waitpoints/tokens/{token_id}/complete", summary="Complete a waitpoint token with data")
async def complete_token(
    token_id: IdPath, body: CompleteTokenBody, env: CurrentEnv, request: Request
) -> dict[str, Any]:
    token = await run_in_threadpool(_engine(request).complete_token, env, token_id, body.data)
    return _token_json(request, token)


@router.post(
    "/waitpoints/tokens/{token_id}/callback/{signature}",
    summary="Complete a token from a webhook: the JSON body is its output (no API key: the URL is signed)",
)
async def callback(token_id: IdPath, signature: Annotated[Opaque, Path()], request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        data = json.loads(raw) if raw.strip() else None
    except ValueError as exc:
        raise ValidationError(f"the request body is not valid JSON: {exc}", details={"field": "body"}) from exc
    token = await run_in_threadpool(_engine(request).complete_token_signed, token_id, signature, data)
    return {"id": token.id, "status": token.status}
