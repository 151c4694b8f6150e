"""Payload checks at trigger time: size, and the task's JSON schema (from its Pydantic model)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import jsonschema
from jsonschema.validators import validator_for

from hightide.errors import PayloadTooLargeError, ValidationError


def check_size(payload: Any, limit: int, field: str = "payload") -> None:
    """Refuse values that are not plain JSON (NaN, Infinity, lone surrogates) or are over ``limit``."""
    try:
        size = len(json.dumps(payload, allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode())
    except ValueError as exc:
        if isinstance(exc, UnicodeEncodeError):
            reason = "contains text that is not valid Unicode (a lone surrogate)"
        else:
            reason = "contains a number JSON cannot carry (NaN or Infinity)"
        raise ValidationError(f"{field}: {reason}", details={"field": field, "reason": reason}) from exc
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
