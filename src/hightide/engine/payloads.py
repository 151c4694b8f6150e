"""Payload checks at trigger time: size, and the task's JSON schema (from its Pydantic model).

The schema is checked as Pydantic validates in its default (lax) mode, which the runner uses: the
server refuses only what the model would refuse too. Pydantic converts ``"12"`` to an ``int``,
``"true"`` or ``1`` to a ``bool``, a Unix time to a ``datetime``, and a list with repeats to a ``set``;
JSON Schema says none of that, so ``lax_schema`` widens those keywords before checking. Whatever is
left to the model (a bound on a number given as a string, a custom validator) is checked by
``my_task.trigger`` before sending and by the runner, which fails such a run at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import jsonschema
from jsonschema.validators import validator_for
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import SchemaError, SchemaValidator, core_schema

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


# What Pydantic's lax mode accepts for a value of each JSON Schema type, beyond the type itself:
# other types, with the keywords that bound them (``laxText`` applies to strings only, ``minimum``
# to numbers only, so each bounds only the values it widens to). Text is checked by Pydantic itself
# (its parsers are linear in the text), never by a regular expression: a pattern able to match a
# character in more than one way backtracks for seconds on a few hundred digits, holding the GIL.
_LAX_TEXT = "laxText"
_LAX_TYPES: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "integer": (("string", "boolean"), {_LAX_TEXT: "integer"}),  # 12.0 already is an integer
    "number": (("string", "boolean"), {_LAX_TEXT: "number"}),
    "boolean": (("number", "string"), {_LAX_TEXT: "boolean", "minimum": 0, "maximum": 1, "multipleOf": 1}),
}
_TEXT_PARSERS: dict[str, TypeAdapter[Any]] = {
    "integer": TypeAdapter(int),
    "number": TypeAdapter(float),
    "boolean": TypeAdapter(bool),
}
_SHOWN_TEXT = 40  # characters of a refused text quoted in the message


def _lax_text(_validator: Any, kind: str, instance: Any, _schema: Any) -> Iterator[jsonschema.ValidationError]:
    """The ``laxText`` keyword: a string must be one Pydantic's lax mode reads as ``kind``."""
    if not isinstance(instance, str):
        return
    try:
        _TEXT_PARSERS[kind].validate_python(instance)
    except PydanticValidationError:
        shown = repr(instance[:_SHOWN_TEXT])
        if len(instance) > _SHOWN_TEXT:
            shown += f"... ({len(instance):,} characters)"
        yield jsonschema.ValidationError(f"{shown} is not a valid {kind}")


_TIME_FORMATS = frozenset({"date-time", "date", "time", "duration"})  # also a number (Unix time, seconds)
_SUBSCHEMA = frozenset(
    {"items", "additionalItems", "additionalProperties", "contains", "propertyNames", "not", "if", "then", "else"}
    | {"unevaluatedItems", "unevaluatedProperties"}
)
_SUBSCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
_SUBSCHEMA_LISTS = frozenset({"anyOf", "allOf", "oneOf", "prefixItems"})


def lax_schema(node: Any) -> Any:
    """``node`` (a JSON schema from Pydantic) widened to accept what Pydantic's lax mode accepts."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _SUBSCHEMA:
            out[key] = [lax_schema(v) for v in value] if isinstance(value, list) else lax_schema(value)
        elif key in _SUBSCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: lax_schema(v) for name, v in value.items()}
        elif key in _SUBSCHEMA_LISTS and isinstance(value, list):
            # oneOf becomes anyOf: widened branches may overlap, and Pydantic takes the first that fits.
            out["anyOf" if key == "oneOf" else key] = [lax_schema(v) for v in value]
        elif key == "uniqueItems":
            continue  # a set or frozenset field drops repeats, it does not refuse them
        elif key in ("enum", "const") and not all(isinstance(v, str) for v in (value if key == "enum" else [value])):
            continue  # an IntEnum accepts "1"; only string choices are matched exactly
        elif key == "type":
            out[key], bounds = _lax_type(value, node.get("format"))
            for name, bound in bounds.items():
                if name not in node:
                    out[name] = bound
        else:
            out[key] = value
    return out


def _lax_type(value: Any, fmt: Any) -> tuple[Any, dict[str, Any]]:
    types = [value] if isinstance(value, str) else list(value) if isinstance(value, list) else None
    if types is None or len(types) != 1:  # Pydantic writes unions as anyOf: a list is someone else's schema
        return value, {}
    name = types[0]
    if name == "string" and fmt in _TIME_FORMATS:
        return ["string", "number"], {}
    wider, bounds = _LAX_TYPES.get(name, ((), {}))
    return ([name, *wider] if wider else name), bounds


@lru_cache(maxsize=1024)
def _linear_pattern(pattern: str) -> SchemaValidator | None:
    """``pattern`` compiled as Pydantic compiles a field's pattern (Rust's regex, linear in the
    text), or None for one it cannot compile (a look-around, a back-reference)."""
    try:
        return SchemaValidator(core_schema.str_schema(pattern=pattern))
    except SchemaError:
        return None


def _pattern_keyword(base: Any) -> Any:
    """The ``pattern`` keyword run as Pydantic runs a model's pattern: Python's ``re``, which
    jsonschema uses, backtracks for ever on a pattern such as ``^(a+)+$`` and a text that nearly
    matches. Only a pattern Rust's regex cannot compile (Pydantic refuses it too) is left to ``re``."""

    def pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Iterator[jsonschema.ValidationError]:
        if not isinstance(instance, str):
            return
        checker = _linear_pattern(patrn)
        if checker is None:
            yield from base(validator, patrn, instance, schema)
        elif not checker.isinstance_python(instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {patrn!r}")

    return pattern


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    schema = lax_schema(json.loads(schema_json))
    base = validator_for(schema)
    keywords = {_LAX_TEXT: _lax_text, "pattern": _pattern_keyword(base.VALIDATORS["pattern"])}
    return jsonschema.validators.extend(base, keywords)(schema)


def check_schema(payload: Any, schema: dict[str, Any] | None, task_id: str, field: str = "payload") -> None:
    """Raise ``ValidationError`` naming the first failing field and why (as Pydantic's lax mode sees it)."""
    if not schema:
        return
    error = jsonschema.exceptions.best_match(_validator(json.dumps(schema, sort_keys=True)).iter_errors(payload))
    if error is None:
        return
    path = ".".join(str(p) for p in error.absolute_path)
    where = f"{field}.{path}" if path else field
    reason = error.message
    raise ValidationError(
        f"{where}: {reason} (task {task_id!r})",
        details={"field": where, "reason": reason, "task": task_id},
    )
