"""Payload checks at trigger time: size, and the task's JSON schema (from its Pydantic model)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import jsonschema
from jsonschema.validators import validator_for

from hightide.errors import PayloadTooLargeError, ValidationError

MAX_VALUE_DEPTH = 64
"""Payloads, outputs, metadata and token data may nest arrays and objects this deep. Half the limit
of a request body (``server.limits.MAX_JSON_DEPTH``), so that a value at its limit still fits in any
request that carries it (a worker's report wraps an output in three more levels)."""


def nests_deeper(value: Any, limit: int) -> bool:
    """True if ``value`` has arrays or objects nested more than ``limit`` deep (no recursion, so a
    value of any depth is measured safely)."""
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def check_size(payload: Any, limit: int, field: str = "payload") -> None:
    """Refuse values that are not plain JSON (NaN, Infinity, lone surrogates), nest deeper than
    ``MAX_VALUE_DEPTH`` or are over ``limit`` bytes."""
    try:
        text = json.dumps(payload, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, RecursionError):
            reason = f"nests arrays or objects deeper than {MAX_VALUE_DEPTH} levels"
        elif isinstance(exc, UnicodeEncodeError):
            reason = "contains text that is not valid Unicode (a lone surrogate)"
        else:
            reason = "contains a number JSON cannot carry (NaN or Infinity)"
        raise ValidationError(f"{field}: {reason}", details={"field": field, "reason": reason}) from exc
    # Only a value with more brackets than the limit can nest deeper than it: most never pay the walk.
    if text.count("[") + text.count("{") > MAX_VALUE_DEPTH and nests_deeper(payload, MAX_VALUE_DEPTH):
        reason = f"nests arrays or objects deeper than {MAX_VALUE_DEPTH} levels"
        raise ValidationError(f"{field}: {reason}", details={"field": field, "reason": reason})
    size = len(text.encode())
    if size > limit:
        raise PayloadTooLargeError(
            f"{field}: {size:,} bytes is over the limit of {limit:,} bytes "
            "(HIGHTIDE_MAX_PAYLOAD_BYTES); pass a reference (a URL or an object key) instead",
            details={"field": field, "size": size, "limit": limit},
        )


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    schema = json.loads(schema_json)
    cls = validator_for(schema)
    return cls(schema)


def check_schema(payload: Any, schema: dict[str, Any] | None, task_id: str, field: str = "payload") -> None:
    """Raise ``ValidationError`` naming the first failing field and why."""
    if not schema:
        return
    error = jsonschema.exceptions.best_match(_validator(json.dumps(schema, sort_keys=True)).iter_errors(payload))
    if error is None:
        return
    path = ".".join(str(p) for p in error.absolute_path)
    where = f"{field}.{path}" if path else field
    raise ValidationError(
        f"{where}: {error.message} (task {task_id!r})",
        details={"field": where, "reason": error.message, "task": task_id},
    )
