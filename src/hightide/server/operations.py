"""Requests to the engine's values: durable operations, token options, trace context."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import Request

from hightide.core.durations import parse_duration
from hightide.core.tracing import TraceParent, parse_traceparent
from hightide.engine.journal import Operation
from hightide.engine.options import TriggerItem, batch_specs
from hightide.engine.tokens import TokenSpec
from hightide.server.models import BatchItem, JournalOp, TokenOptions


def token_spec(options: TokenOptions | None, prefix: str = "") -> TokenSpec:
    if options is None:
        return TokenSpec()
    timeout = options.timeout
    ttl = options.idempotency_key_ttl
    return TokenSpec(
        timeout=None if timeout is None else parse_duration(timeout, field=f"{prefix}timeout"),
        tags=tuple(options.tags),
        idempotency_key=options.idempotency_key,
        idempotency_key_ttl=None if ttl is None else parse_duration(ttl, field=f"{prefix}idempotency_key_ttl"),
    )


def trigger_items(items: Sequence[BatchItem]) -> list[TriggerItem]:
    return [(item.task, item.payload, item.options.as_dict()) for item in items]


def trace_parent(request: Request) -> TraceParent | None:
    """The caller's span (W3C ``traceparent``): runs it triggers join that trace under it."""
    return parse_traceparent(request.headers.get("traceparent"))


def operation(body: JournalOp, now: float, execution: int | None, parent: TraceParent | None = None) -> Operation:
    items = trigger_items(body.items)
    ttl = body.idempotency_key_ttl
    return Operation(
        seq=body.seq,
        kind=body.kind,
        name=body.name,
        specs=tuple(batch_specs(body.name or None, items, now, parent)) if items else (),
        resume_at=body.resume_at,
        idempotency_key=body.idempotency_key,
        idempotency_key_ttl=None if ttl is None else parse_duration(ttl, field="idempotency_key_ttl"),
        token=token_spec(body.token, "token.") if body.kind == "create_token" else None,
        token_id=body.token_id,
        data=body.data,
        result=body.result,
        execution=execution,
    )
