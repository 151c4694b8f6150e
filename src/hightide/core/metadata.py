"""Run metadata as operations: what each operation does to a run's metadata, the size limit, and
who may still change a run. Pure: the runner applies operations to its local view with these
functions, and the store applies the same ones to the stored document under the run's row lock.

An operation changes one top-level key (``replace`` changes the whole document), so operations on
different keys commute and concurrent ``increment``s of one key add up: a server that applies them
one transaction at a time never loses an update, whoever sent them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hightide.core.limits import MAX_METADATA_BYTES, MAX_NAME_LENGTH, check_text
from hightide.errors import ConflictError, ValidationError

UPDATABLE_AFTER_FINISH = 3600.0
"""Seconds a finished run's metadata and tags may still change (late children of a fan-out that
did not wait for them, a backend annotating a run that just finished); Trigger.dev's window too."""


class OperationType(StrEnum):
    SET = "set"
    """``key`` becomes ``value``."""
    DELETE = "delete"
    """``key`` is removed (nothing happens if it is absent)."""
    INCREMENT = "increment"
    """``key`` becomes its number plus ``value`` (a missing or non-number key counts as 0)."""
    APPEND = "append"
    """``value`` is added at the end of the list at ``key`` (a missing key becomes ``[value]``, any
    other value ``[old, value]``)."""
    REMOVE = "remove"
    """Every item equal to ``value`` is removed from the list at ``key`` (anything else is left)."""
    REPLACE = "replace"
    """The whole document becomes ``value`` (an object); ``key`` is not used."""


class Target(StrEnum):
    """Whose metadata a list of operations changes, relative to the run that sends them."""

    RUN = "run"
    PARENT = "parent"
    ROOT = "root"


@dataclass(frozen=True)
class MetadataOperation:
    type: OperationType
    key: str | None = None
    value: Any = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type.value}
        if self.key is not None:
            body["key"] = self.key
        if self.type is not OperationType.DELETE:
            body["value"] = self.value
        return body


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_operation(op: MetadataOperation, field: str) -> MetadataOperation:
    """``op`` if it is well formed: a key of 1 to 256 characters (no NUL) for every type but
    ``replace``, a finite number for ``increment``, an object for ``replace``."""
    if op.type is OperationType.REPLACE:
        if not isinstance(op.value, dict):
            raise ValidationError(
                f"{field}.value: replace takes an object (the whole metadata)", details={"field": f"{field}.value"}
            )
        return op
    check_text(op.key, f"{field}.key", MAX_NAME_LENGTH)
    if op.type is OperationType.INCREMENT and not is_number(op.value):
        raise ValidationError(
            f"{field}.value: increment takes a finite number, not {type(op.value).__name__}",
            details={"field": f"{field}.value"},
        )
    return op


def apply_operations(doc: dict[str, Any], ops: Iterable[MetadataOperation]) -> dict[str, Any]:
    """The document after ``ops``, in order. ``doc`` is not changed (lists it holds are copied
    before they change)."""
    out = dict(doc)
    for op in ops:
        if op.type is OperationType.REPLACE:
            out = dict(op.value)
            continue
        key = op.key
        assert key is not None  # check_operation
        if op.type is OperationType.SET:
            out[key] = op.value
        elif op.type is OperationType.DELETE:
            out.pop(key, None)
        elif op.type is OperationType.INCREMENT:
            current = out.get(key)
            out[key] = (current if is_number(current) else 0) + op.value
        elif op.type is OperationType.APPEND:
            current = out.get(key)
            if key not in out:
                out[key] = [op.value]
            elif isinstance(current, list):
                out[key] = [*current, op.value]
            else:
                out[key] = [current, op.value]
        elif op.type is OperationType.REMOVE:
            current = out.get(key)
            if isinstance(current, list):
                out[key] = [item for item in current if not _same(item, op.value)]
    return out


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``1`` and ``true`` are different values, ``1`` and ``1.0`` the same number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if is_number(a) and is_number(b):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


def encoded_size(value: Any) -> int:
    """Bytes of ``value`` as the store keeps it (compact JSON, UTF-8)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def growth_bound(op: MetadataOperation, new_value: Any) -> int:
    """At most how many bytes ``op`` adds to a document's size (``new_value``: what it wrote at its
    key): lets the runner skip measuring the whole document after most operations."""
    return encoded_size(op.key) + encoded_size(new_value) + 4


def check_metadata_size(
    doc: dict[str, Any], run_id: str | None, target: Target = Target.RUN, field: str = "metadata"
) -> int:
    """The size of ``doc``, the metadata of ``run_id`` (``None``: a run being triggered); a
    ``ValidationError`` naming the limit if it is over it."""
    size = encoded_size(doc)
    if size > MAX_METADATA_BYTES:
        if run_id is None:
            whose, details = "the run", {}
        else:
            whose = f"run {run_id}" if target is Target.RUN else f"run {run_id} (the {target.value} run)"
            details = {"run": run_id, "target": target.value}
        raise ValidationError(
            f"{field}: the metadata of {whose} would be {size:,} bytes, over the limit of "
            f"{MAX_METADATA_BYTES:,} bytes (256 KB); keep large values elsewhere (a URL, an object key) "
            "and store a reference",
            details={"field": field, **details, "size": size, "limit": MAX_METADATA_BYTES},
        )
    return size


def check_updatable(
    run_id: str, status: str, finished_at: float | None, now: float, target: Target = Target.RUN
) -> None:
    """A ``ConflictError`` if the run finished more than ``UPDATABLE_AFTER_FINISH`` ago."""
    if finished_at is not None and now - finished_at > UPDATABLE_AFTER_FINISH:
        whose = f"run {run_id}" if target is Target.RUN else f"run {run_id} (the {target.value} run)"
        raise ConflictError(
            f"{whose} finished ({status}) more than an hour ago: its metadata and tags can no longer change",
            details={"run": run_id, "target": target.value, "status": status},
        )


def cull(ops: Sequence[MetadataOperation]) -> list[MetadataOperation]:
    """``ops`` with the same effect in fewer operations (the runner's buffer before it sends): a
    ``set`` or ``delete`` of a key drops the earlier operations on that key, a ``replace`` every
    earlier operation, and consecutive ``increment``s of a key add up."""
    out: list[MetadataOperation] = []
    for op in ops:
        if op.type is OperationType.REPLACE:
            out = [op]
            continue
        if op.type in (OperationType.SET, OperationType.DELETE):
            out = [o for o in out if o.key != op.key]
        elif op.type is OperationType.INCREMENT:
            last = _last_on(out, op.key)
            if last is not None and out[last].type is OperationType.INCREMENT:
                out[last] = MetadataOperation(OperationType.INCREMENT, op.key, out[last].value + op.value)
                continue
        out.append(op)
    return out


def _last_on(ops: Sequence[MetadataOperation], key: str | None) -> int | None:
    """The index of the last operation of ``ops`` that touches ``key`` (a ``replace`` touches all)."""
    for i in range(len(ops) - 1, -1, -1):
        if ops[i].key == key or ops[i].type is OperationType.REPLACE:
            return i
    return None


def check_tag_count(run_id: str, current: Sequence[str], new: Sequence[str], limit: int) -> None:
    """A ``ValidationError`` naming the limit if adding ``new`` to ``current`` makes more than ``limit`` tags."""
    if len(current) + len(new) > limit:
        raise ValidationError(
            f"tags: run {run_id} has {len(current)} tags and {len(new)} more would make {len(current) + len(new)}, "
            f"over the limit of {limit} tags per run",
            details={"field": "tags", "run": run_id, "tags": list(current), "limit": limit},
        )
