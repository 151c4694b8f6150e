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
_Code = Callable[[Any], Any]


def to_json(message: Any) -> dict[str, Any]:
    """The JSON object of ``message`` (a dataclass instance)."""
    encode: Callable[[Any], dict[str, Any]] = _plan(type(message))[0]
    return encode(message)


def from_json(cls: type[T], data: Any) -> T:
    """The ``cls`` message read from ``data``; keys it does not name are ignored (a ``type`` tag)."""
    decode: Callable[[Any], T] = _plan(cls)[1]
    return decode(data)


# Per message class, worked out once from its field types: how to write it and how to read it.
# Messages cross thousands of times a second, so each is a closure over what its fields need,
# with nothing done per field that the types settle in advance.
_PLANS: dict[type[Any], tuple[Callable[[Any], dict[str, Any]], Callable[[Any], Any]]] = {}


def _plan(cls: type[Any]) -> tuple[Callable[[Any], dict[str, Any]], Callable[[Any], Any]]:
    found = _PLANS.get(cls)
    if found is None:
        found = _PLANS[cls] = _make_plan(cls)
    return found


def _make_plan(cls: type[Any]) -> tuple[Callable[[Any], dict[str, Any]], Callable[[Any], Any]]:
    hints = typing.get_type_hints(cls)
    names = tuple(f.name for f in dataclasses.fields(cls))
    encoders = tuple((name, code) for name in names if (code := _coder(hints[name], to=True)) is not None)
    decoders = tuple((name, _coder(hints[name], to=False)) for name in names)
    sparse = getattr(cls, "SPARSE", False)
    fields = dataclasses.fields(cls)
    defaults = {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}
    factories = tuple((f.name, f.default_factory) for f in fields if f.default_factory is not dataclasses.MISSING)
    required = frozenset(f.name for f in fields) - defaults.keys() - {name for name, _ in factories}

    def encode(message: Any) -> dict[str, Any]:
        out = {name: getattr(message, name) for name in names}
        for name, code in encoders:
            out[name] = code(out[name])
        if sparse:
            return {k: v for k, v in out.items() if v is not None}
        return out

    def decode(data: Any) -> Any:
        if isinstance(data, Mapping):
            kwargs = {name: data[name] for name in names if name in data}
        else:
            missing = object()
            kwargs = {name: v for name in names if (v := getattr(data, name, missing)) is not missing}
        for name, code in decoders:
            if code is not None and name in kwargs:
                kwargs[name] = code(kwargs[name])
        if not required <= kwargs.keys():
            return cls(**kwargs)  # raises the TypeError naming what is missing
        # A frozen dataclass's __init__ sets each field through object.__setattr__; messages have
        # no __post_init__, so filling the instance's __dict__ is the same, at a third of the cost.
        message = object.__new__(cls)
        values = message.__dict__
        values.update(defaults)
        for name, factory in factories:
            if name not in kwargs:
                values[name] = factory()
        values.update(kwargs)
        return message

    return encode, decode


def _coder(tp: Any, *, to: bool) -> _Code | None:
    """How to write (``to``) or read a value of type ``tp``; ``None``: as it is. Written, nested
    messages become objects and tuples lists; read, objects become messages and lists tuples.
    Values typed ``Any`` (payloads, outputs) pass as they are, uncopied."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        inner = [a for a in args if a is not type(None)]
        code = _coder(inner[0], to=to) if len(inner) == 1 else None
        if code is None:
            return None
        return lambda value: None if value is None else code(value)
    if origin is tuple:
        item = _coder(args[0], to=to) if args else None
        if item is None:
            return list if to else tuple
        if to:
            return lambda value: [item(v) for v in value]
        return lambda value: tuple(item(v) for v in value)
    message = tp if isinstance(tp, type) and dataclasses.is_dataclass(tp) else None
    if message is None and isinstance(origin, type) and dataclasses.is_dataclass(origin):
        message = origin  # a generic message, e.g. AttemptResult[X]
    if message is not None:
        cls = message
        if to:
            return lambda value: _plan(type(value))[0](value)
        return lambda value: _plan(cls)[1](value)
    return None
