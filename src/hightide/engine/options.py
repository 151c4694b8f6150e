"""Trigger options as the engine receives them, and their validation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hightide.core.durations import parse_duration
from hightide.core.limits import (
    MAX_DURATION_TEXT_LENGTH,
    MAX_ID_LENGTH,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_NAME_LENGTH,
    MAX_PRIORITY,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    check_text,
    check_time,
)
from hightide.core.machines import check_machine
from hightide.core.retry import MAX_ATTEMPTS
from hightide.core.tracing import TraceParent
from hightide.errors import ValidationError

MAX_BATCH_ITEMS = 1000
# The longest each string option may be: the column that stores it (store/schema.py).
STRING_OPTIONS = {
    "queue": MAX_NAME_LENGTH,
    "concurrency_key": MAX_NAME_LENGTH,
    "machine": MAX_ID_LENGTH,
    "version": MAX_ID_LENGTH,
    "parent_run_id": MAX_ID_LENGTH,
}
DEFAULT_IDEMPOTENCY_TTL = 30 * 86400.0


@dataclass(frozen=True)
class TriggerSpec:
    """One run to create. Durations are already seconds; ``delay_until`` is absolute."""

    task_id: str
    payload: Any = None
    idempotency_key: str | None = None
    idempotency_key_ttl: float | None = None
    delay_until: float | None = None
    ttl: float | None = None
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None
    concurrency_key: str | None = None
    max_attempts: int | None = None
    priority: float = 0.0
    machine: str | None = None
    version: str | None = None
    parent_run_id: str | None = None
    trace_parent: TraceParent | None = None  # from the request's `traceparent` header


def parse_delay(value: Any, now: float, field_name: str = "delay") -> float | None:
    """``delay`` is a duration ("5m", seconds) or an ISO 8601 date-time; returns an absolute time."""
    if value is None:
        return None
    if isinstance(value, str) and ("T" in value or value.count("-") >= 2):
        try:
            when = datetime.fromisoformat(
                check_text(value, field_name, MAX_DURATION_TEXT_LENGTH).replace("Z", "+00:00")
            )
        except ValueError as exc:
            raise ValidationError(
                f"{field_name}: {value!r} is neither a duration nor an ISO 8601 date-time",
                details={"field": field_name},
            ) from exc
        if when.tzinfo is None:
            raise ValidationError(
                f"{field_name}: date-time {value!r} needs a timezone (e.g. 'Z' or '+00:00')",
                details={"field": field_name},
            )
        return check_time(when.timestamp(), field_name)
    return now + parse_duration(value, field=field_name)


def spec_from_options(
    task_id: str,
    payload: Any,
    options: dict[str, Any],
    now: float,
    prefix: str = "",
    trace_parent: TraceParent | None = None,
) -> TriggerSpec:
    """Validate the ``options`` of one trigger request; errors name the field (under ``prefix``)."""
    known = set(TriggerSpec.__dataclass_fields__) - {"task_id", "payload", "delay_until", "trace_parent"} | {"delay"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValidationError(f"{prefix}options: unknown option(s) {unknown}", details={"field": f"{prefix}options"})

    def dur(name: str) -> float | None:
        value = options.get(name)
        return None if value is None else parse_duration(value, field=f"{prefix}options.{name}")

    tags = options.get("tags") or ()
    if isinstance(tags, str):
        tags = (tags,)
    if not isinstance(tags, list | tuple) or not all(isinstance(x, str) for x in tags):
        raise ValidationError(f"{prefix}options.tags: expected a list of strings", details={"field": "tags"})
    if len(tags) > MAX_TAGS or any(not tag or len(tag) > MAX_TAG_LENGTH for tag in tags):
        raise ValidationError(
            f"{prefix}options.tags: at most {MAX_TAGS} tags of 1 to {MAX_TAG_LENGTH} characters",
            details={"field": "tags"},
        )
    for i, tag in enumerate(tags):
        check_text(tag, f"{prefix}options.tags[{i}]", MAX_TAG_LENGTH)
    metadata = options.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ValidationError(f"{prefix}options.metadata: expected an object", details={"field": "metadata"})
    key = options.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or not key or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH):
        raise ValidationError(
            f"{prefix}options.idempotency_key: expected a string of 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters",
            details={"field": "idempotency_key"},
        )
    if key is not None:
        check_text(key, f"{prefix}options.idempotency_key", MAX_IDEMPOTENCY_KEY_LENGTH)
    max_attempts = options.get("max_attempts")
    if max_attempts is not None and (
        not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or not 1 <= max_attempts <= MAX_ATTEMPTS
    ):
        raise ValidationError(
            f"{prefix}options.max_attempts: expected a whole number from 1 to {MAX_ATTEMPTS}",
            details={"field": "max_attempts"},
        )
    priority = options.get("priority") or 0
    if not isinstance(priority, int | float) or isinstance(priority, bool) or not 0 <= priority <= MAX_PRIORITY:
        raise ValidationError(
            f"{prefix}options.priority: expected a number of seconds from 0 to {MAX_PRIORITY:g}",
            details={"field": "priority"},
        )
    for name, max_length in STRING_OPTIONS.items():
        value = options.get(name)
        if value is not None:
            check_text(value, f"{prefix}options.{name}", max_length)
    check_machine_and_version(options, prefix)
    return TriggerSpec(
        task_id=task_id,
        payload=payload,
        idempotency_key=key,
        idempotency_key_ttl=dur("idempotency_key_ttl"),
        delay_until=parse_delay(options.get("delay"), now, f"{prefix}options.delay"),
        ttl=dur("ttl"),
        tags=tuple(tags),
        metadata=metadata,
        queue=options.get("queue"),
        concurrency_key=options.get("concurrency_key"),
        max_attempts=max_attempts,
        priority=float(priority),
        machine=options.get("machine"),
        version=options.get("version"),
        parent_run_id=options.get("parent_run_id"),
        trace_parent=trace_parent,
    )


def check_machine_and_version(options: dict[str, Any], prefix: str = "") -> None:
    """``machine`` must name a preset. ``version`` pins a deployed version, and there are no deploys
    yet: refuse it rather than ignore it."""
    if options.get("machine") is not None:
        check_machine(options["machine"], f"{prefix}options.machine")
    if options.get("version") is not None:
        raise ValidationError(
            f"{prefix}options.version: pinning a run to a version needs deploys, which this server does not "
            "support yet; leave `version` unset (a run uses the version of the worker that runs it)",
            details={"field": f"{prefix}options.version"},
        )


def batch_specs(
    default_task: str | None,
    items: Sequence[tuple[str | None, Any, dict[str, Any]]],
    now: float,
    trace_parent: TraceParent | None = None,
) -> list[TriggerSpec]:
    """The specs of a batch: each item is (task id or ``None`` for ``default_task``, payload, options)."""
    specs = []
    for i, (task_id, payload, options) in enumerate(items):
        item_task = task_id or default_task
        if not item_task:
            raise ValidationError(f"items[{i}].task: required", details={"field": f"items[{i}].task"})
        specs.append(spec_from_options(item_task, payload, options, now, f"items[{i}].", trace_parent))
    return specs
