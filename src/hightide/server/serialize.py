"""Records to JSON for API responses. Times are ISO 8601 in UTC.

Serialisation is total: the API refuses values it could not serve back (``core/limits.py``), but a
row written before those limits, or by hand, must still not make a listing fail. A time past the
dates Python can name is served as the last one (``9999-12-31T23:59:59.999999Z``), a number JSON
cannot carry (NaN, Infinity) as null.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from hightide.core import protocol
from hightide.core.machines import DEFAULT_MACHINE
from hightide.core.retry import RetryPolicy
from hightide.core.tracing import attempt_span_id
from hightide.engine.queues import QueueState
from hightide.engine.schedules import ScheduleState
from hightide.engine.traces import Trace, trace_ids
from hightide.store.alerts import Alert, Delivery
from hightide.store.records import Attempt, BulkAction, LogEntry, Run, SpanRecord, Waitpoint

_LAST = datetime.max.replace(tzinfo=UTC)
_FIRST = datetime.min.replace(tzinfo=UTC)


def iso(ts: Any) -> str | None:
    """``ts`` (seconds since the epoch) as ISO 8601, clamped to the dates that exist; null if not a time."""
    if isinstance(ts, bool) or not isinstance(ts, int | float) or ts != ts:
        return None
    try:
        when = datetime.fromtimestamp(ts, UTC)
    except (OverflowError, ValueError, OSError):
        when = _LAST if ts > 0 else _FIRST
    return when.isoformat().replace("+00:00", "Z")


def number(value: Any) -> Any:
    """A stored number as JSON can carry it: NaN and infinities are null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def run_json(run: Run, attempts: list[Attempt] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": run.id,
        "task_id": run.task_id,
        "status": run.status.value,
        "is_finished": run.status.is_final,
        "payload": run.payload,
        "output": run.output,
        "error": run.error,
        "attempt_count": run.attempt_count,
        "max_attempts": run.max_attempts,
        "tags": run.tags,
        "metadata": run.metadata,
        "queue": run.queue,
        "priority": number(run.priority),
        "idempotency_key": run.idempotency_key,
        "concurrency_key": run.concurrency_key,
        "machine": run.machine or DEFAULT_MACHINE,
        "version": run.version,
        "parent_run_id": run.parent_run_id,
        "root_run_id": run.root_run_id,
        "trace_id": trace_ids(run)[0],
        "created_at": iso(run.created_at),
        "updated_at": iso(run.updated_at),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "delay_until": iso(run.delay_until),
        "ttl_expires_at": iso(run.ttl_expires_at),
    }
    if attempts is not None:
        body["attempts"] = [attempt_json(a) for a in attempts]
    return body


def retrieved_json(
    run: Run, attempts: Sequence[Attempt], waits: Sequence[Waitpoint], token_url: Callable[[str], str]
) -> dict[str, Any]:
    """A run as ``GET /api/v1/runs/{id}`` and the realtime streams serve it: with its attempts and
    what it waits for (``token_url`` makes a token's callback URL from its id)."""
    body = run_json(run, list(attempts))
    body["waiting_for"] = [waiting_json(wp, token_url(wp.id) if wp.kind == "TOKEN" else None) for wp in waits]
    return body


def attempt_json(attempt: Attempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "status": attempt.status,
        "worker_id": attempt.worker_id,
        "version": attempt.version,
        "started_at": iso(attempt.started_at),
        "finished_at": iso(attempt.finished_at),
        "error": attempt.error,
    }


def log_json(log_id: int, entry: LogEntry) -> dict[str, Any]:
    return {
        "id": log_id,
        "run_id": entry.run_id,
        "attempt": entry.attempt,
        "time": iso(entry.time),
        "level": entry.level,
        "message": entry.message,
        "attributes": entry.attributes,
        "span_id": entry.span_id,
    }


def trace_json(trace: Trace) -> dict[str, Any]:
    return {"trace_id": trace.trace_id, "truncated": trace.truncated, "spans": [span_json(s) for s in trace.spans]}


def span_json(span: SpanRecord) -> dict[str, Any]:
    """A span; ``end_time`` is null while it is in progress (a run executing, a wait not over)."""
    return {
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_span_id": span.parent_span_id,
        "run_id": span.run_id,
        "attempt": span.attempt,
        "name": span.name,
        "kind": span.kind,
        "start_time": iso(span.start_time),
        "end_time": iso(span.end_time),
        "duration_ms": _duration_ms(span.start_time, span.end_time),
        "status": span.status,
        "attributes": span.attributes,
        "events": [{**e, "time": iso(e.get("time"))} for e in span.events if isinstance(e, dict)],
    }


def _duration_ms(start: float, end: float | None) -> float | None:
    if end is None:
        return None
    return number(round((end - start) * 1000, 3)) if math.isfinite(end - start) else None


def queue_json(state: QueueState) -> dict[str, Any]:
    q = state.queue
    return {
        "name": q.name,
        "paused": q.paused,
        "paused_at": iso(q.paused_at),
        "concurrency_limit": q.limit,  # in effect; null: no limit of its own (the environment's holds)
        "declared_concurrency_limit": q.concurrency_limit,
        "concurrency_limit_override": q.concurrency_limit_override,
        "overridden_at": iso(q.overridden_at),
        # {"limit", "period" (seconds), "per" (null or "concurrency_key")}; null: no rate limit
        "rate_limit": None if q.rate_limit is None else q.rate_limit.to_dict(),
        "executing": state.executing,
        "queued": state.queued,
        "tasks": state.tasks,
    }


def bulk_json(action: BulkAction) -> dict[str, Any]:
    selection: dict[str, Any] = dict(action.selection)
    if "filter" in selection:
        f = selection["filter"]
        selection = {
            "filter": {
                "status": list(f.get("statuses") or []),
                "task": list(f.get("task_ids") or []),
                "tag": f.get("tag"),
                "version": f.get("version"),
                "from": iso(f.get("created_from")),
                "to": iso(f.get("created_to")),
            }
        }
    else:
        selection = {"ids_count": len(selection.get("ids") or [])}
    return {
        "id": action.id,
        "action": action.action,
        "status": action.status,
        "is_finished": action.status != "RUNNING",
        "total": action.total,
        "processed": action.processed,
        "succeeded": action.succeeded,
        "skipped": action.skipped,
        "failed": action.failed,
        "failures": [{"run_id": run_id, "message": message} for run_id, message in action.failures],
        "selection": selection,
        "created_at": iso(action.created_at),
        "updated_at": iso(action.updated_at),
        "finished_at": iso(action.finished_at),
    }


def schedule_json(state: ScheduleState) -> dict[str, Any]:
    s = state.schedule
    return {
        "id": s.id,
        "task": s.task_id,
        "cron": s.cron,
        "timezone": s.timezone,
        "external_id": s.external_id,
        "deduplication_key": s.deduplication_key,
        "kind": s.kind,
        "active": s.active,
        "next_run_at": iso(s.next_tick_at) if s.active else None,
        "last_run_at": iso(s.last_tick_at),
        "upcoming": [iso(t) for t in state.upcoming],
        "created_at": iso(s.created_at),
        "updated_at": iso(s.updated_at),
    }


def alert_json(alert: Alert, *, secret: bool = False) -> dict[str, Any]:
    """A webhook; its signing ``secret`` only when asked for (on create and retrieve)."""
    body: dict[str, Any] = {
        "id": alert.id,
        "url": alert.url,
        "events": alert.events,
        "description": alert.description,
        "enabled": alert.enabled,
        "created_at": iso(alert.created_at),
        "updated_at": iso(alert.updated_at),
    }
    if secret:
        body["secret"] = alert.secret
    return body


def delivery_json(delivery: Delivery, *, body: bool = False) -> dict[str, Any]:
    """A delivery with its tries, oldest first; the event it sends (``body``) only when asked for."""
    found: dict[str, Any] = {
        "id": delivery.id,
        "alert_id": delivery.alert_id,
        "event_id": delivery.event_id,
        "event": delivery.event,
        "run_id": delivery.run_id,
        "status": delivery.status,
        "tries": delivery.tries,
        "next_try_at": iso(delivery.next_try_at),
        "created_at": iso(delivery.created_at),
        "delivered_at": iso(delivery.delivered_at),
        "log": [
            {
                "at": iso(t.get("at")),
                "status_code": t.get("status_code"),
                "error": t.get("error"),
                "duration_ms": number(t.get("duration_ms")),
            }
            for t in delivery.log
        ],
    }
    if body:
        found["body"] = json.loads(delivery.body) if delivery.body else None
    return found


def token_json(token: Waitpoint, url: str) -> dict[str, Any]:
    return {
        "id": token.id,
        "url": url,
        "status": token.status,
        "output": token.output,
        "timeout_at": iso(token.timeout_at),
        "tags": token.tags,
        "idempotency_key": token.idempotency_key,
        "owner_run_id": token.owner_run_id,
        "created_at": iso(token.created_at),
        "completed_at": iso(token.completed_at),
    }


def waiting_json(wp: Waitpoint, token_url: str | None) -> dict[str, Any]:
    """One thing a WAITING run waits for: a child run (``run_id``), a time (``resume_at``) or a
    token (``token_id``, its callback ``url`` and ``timeout_at``)."""
    body: dict[str, Any] = {"kind": wp.kind, "waitpoint_id": wp.id}
    if wp.kind == "RUN":
        body["run_id"] = wp.run_id
    elif wp.kind == "DURATION":
        body["resume_at"] = iso(wp.resume_at)
    elif wp.kind == "TOKEN":
        body.update(token_id=wp.id, url=token_url, timeout_at=iso(wp.timeout_at), tags=wp.tags)
    return body


def execution(run: Run, environment_slug: str, journal: list[dict[str, Any]] | None = None) -> protocol.Execution:
    """What a worker needs to execute one attempt of ``run``: with its journal, to replay it."""
    return protocol.Execution(
        journal=tuple(journal or ()),
        execution=run.executions,
        run_id=run.id,
        task_id=run.task_id,
        attempt=run.attempt_count,
        payload=run.payload,
        tags=tuple(run.tags),
        metadata=run.metadata,
        queue=run.queue,
        max_attempts=run.max_attempts,
        max_duration=number(run.max_duration),
        created_at=iso(run.created_at),
        started_at=iso(run.started_at),
        parent_run_id=run.parent_run_id,
        root_run_id=run.root_run_id,
        environment=environment_slug,
        version=run.version,
        trace=_trace_context(run),
        machine=run.machine or DEFAULT_MACHINE,
        retry_machine=RetryPolicy.from_dict(run.retry).retry_machine(run.machine),
    )


def _trace_context(run: Run) -> protocol.AttemptSpan:
    """Where the runner's spans go: the trace, and the span of the attempt being executed."""
    trace_id, span_id = trace_ids(run)
    return protocol.AttemptSpan(trace_id, attempt_span_id(span_id, run.attempt_count))
