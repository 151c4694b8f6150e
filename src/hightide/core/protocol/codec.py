"""One codec for every message: a frozen dataclass to JSON and back.

``to_json`` turns a message into the JSON object that crosses (field names as keys; tuples as
lists; ``None`` fields left out of a ``SPARSE`` message). ``from_json`` reads one back, building
the nested messages its field types name; it reads a mapping, or an object with the same
attributes (a validated request body). Values typed ``Any`` (payloads, outputs) pass through as
they are, uncopied.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")
_Decode = Callable[[Any], Any]


def to_json(message: Any) -> dict[str, Any]:
    """The JSON object of ``message`` (a dataclass instance)."""
    sparse = getattr(type(message), "SPARSE", False)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(message):
        value = getattr(message, f.name)
        if value is None and sparse:
            continue
        out[f.name] = _value(value)
    return out


def _value(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json(value)
    if isinstance(value, tuple):
        return [_value(v) for v in value]
    return value


def from_json(cls: type[T], data: Any) -> T:
    """The ``cls`` message read from ``data``; keys it does not name are ignored (a ``type`` tag)."""
    if isinstance(data, Mapping):
        present = [(name, decode, data[name]) for name, decode in _decoders(cls) if name in data]
    else:
        missing = object()
        present = [
            (name, decode, value)
            for name, decode in _decoders(cls)
            if (value := getattr(data, name, missing)) is not missing
        ]
    return cls(**{name: decode(value) for name, decode, value in present})


_DECODERS: dict[type[Any], tuple[tuple[str, _Decode], ...]] = {}


def _decoders(cls: type[Any]) -> tuple[tuple[str, _Decode], ...]:
    """How to read each field of ``cls`` (worked out once per class)."""
    found = _DECODERS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = _DECODERS[cls] = tuple((f.name, _decoder(hints[f.name])) for f in dataclasses.fields(cls))
    return found


def _identity(value: Any) -> Any:
    return value


def _decoder(tp: Any) -> _Decode:
    """How to read a value of type ``tp``: nested messages are built, lists become tuples."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            decode = _decoder(inner[0])
            if decode is _identity:
                return _identity
            return lambda value: None if value is None else decode(value)
        return _identity
    if origin is tuple:
        item = _decoder(args[0]) if args else _identity
        return lambda value: tuple(item(v) for v in value)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        message = tp
        return lambda value: from_json(message, value)
    if isinstance(origin, type) and dataclasses.is_dataclass(origin):  # a generic message, e.g. AttemptResult[X]
        generic = origin
        return lambda value: from_json(generic, value)
    return _identity
