"""The request bodies of the worker API, derived from the messages of ``core/protocol``.

Each body is a Pydantic model generated from its message's dataclass: the same fields, defaults
and descriptions, and the limits its ``fields`` markers name turned into the constraints of
``models.py`` (lengths, patterns, the NUL check, ranges, list sizes), so that the OpenAPI document
publishes them and a value beyond them is a 422. A route reads a validated body back into its
message with ``protocol.from_json``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias, Union

from pydantic import BaseModel, Field, StringConstraints, create_model

from hightide.core import protocol
from hightide.core.protocol.fields import Doc, Items, Range, Text
from hightide.core.retry import RetryDecision
from hightide.server.models import NUL, NUL_SCHEMA, Body, JournalOp

_NAMES: dict[type[Any], str] = {
    protocol.RegisterRequest: "RegisterBody",
    protocol.ClaimRequest: "ClaimBody",
    protocol.HeldRun: "HeldRun",
    protocol.HeartbeatRequest: "HeartbeatBody",
    protocol.LogRecord: "LogBody",
    protocol.SpanEvent: "SpanEvent",
    protocol.Span: "SpanBody",
    protocol.AttemptResult: "AttemptResult",
    RetryDecision: "RetryDecision",
    protocol.ClaimMore: "ClaimMore",
    protocol.CompleteRequest: "CompleteBody",
    protocol.ReleasedRun: "ReleasedRun",
    protocol.ReleaseRequest: "ReleaseBody",
    protocol.OwedHooksRequest: "OwedHooksBody",
    protocol.HooksDoneRequest: "HooksDoneBody",
}
# A field whose items the server reads with a model of its own: the journal operations a
# suspension records are the journal API's operations (timers only, checked by the engine).
_FIELD_TYPES: dict[tuple[type[Any], str], Any] = {(protocol.AttemptResult, "record"): list[JournalOp]}
_models: dict[type[Any], type[BaseModel]] = {}


def body_model(cls: type[Any]) -> type[BaseModel]:
    """The request body of the message ``cls`` (built once)."""
    model = _models.get(cls)
    if model is None:
        hints = typing.get_type_hints(cls, include_extras=True)
        fields = {f.name: _field(cls, f, hints[f.name]) for f in dataclasses.fields(cls)}
        doc = cls.__doc__ if cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}(") else None
        model = create_model(_NAMES[cls], __base__=Body, __doc__=doc, __module__=__name__, **fields)  # type: ignore[call-overload]
        _models[cls] = model
    return model


def _field(cls: type[Any], f: dataclasses.Field[Any], hint: Any) -> tuple[Any, Any]:
    override = _FIELD_TYPES.get((cls, f.name))
    if override is not None:
        meta = typing.get_args(hint)[1:] if typing.get_origin(hint) is Annotated else ()
        annotation = Annotated[(override, *(_constraint(m) for m in meta))] if meta else override
    else:
        annotation = _annotation(hint)
    if f.default is not dataclasses.MISSING:
        if f.default == ():
            return annotation, Field(default_factory=list)
        return annotation, Field(default=f.default)
    if f.default_factory is not dataclasses.MISSING:
        return annotation, Field(default_factory=f.default_factory)
    return annotation, Field(...)


def _annotation(tp: Any) -> Any:
    """The Pydantic annotation of a message's field type."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        return Annotated[(_annotation(args[0]), *(c for m in tp.__metadata__ for c in _constraints(m)))]
    if origin is Union or origin is types.UnionType:
        return Union[tuple(_annotation(a) for a in args)]  # noqa: UP007
    if origin is tuple or origin is list:
        return list[_annotation(args[0])]  # type: ignore[misc]
    if isinstance(origin, type) and dataclasses.is_dataclass(origin):  # a generic message
        return body_model(origin)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return body_model(tp)
    return tp


def _constraints(marker: Any) -> list[Any]:
    if isinstance(marker, Text):
        found: list[Any] = []
        if marker.max_length is not None:
            found.append(StringConstraints(min_length=marker.min_length, max_length=marker.max_length))
        found += [Field(pattern=marker.pattern)] if marker.pattern else [NUL, NUL_SCHEMA]
        return found
    return [_constraint(marker)]


def _constraint(marker: Any) -> Any:
    if isinstance(marker, Range):
        return Field(ge=marker.ge, le=marker.le, lt=marker.lt)
    if isinstance(marker, Items):
        return Field(max_length=marker.max_length)
    if isinstance(marker, Doc):
        return Field(description=marker.text)
    return marker


if TYPE_CHECKING:  # generated at import time: to a type checker, bodies of any shape
    RegisterBody: TypeAlias = Any
    ClaimBody: TypeAlias = Any
    HeartbeatBody: TypeAlias = Any
    CompleteBody: TypeAlias = Any
    ReleaseBody: TypeAlias = Any
    OwedHooksBody: TypeAlias = Any
    HooksDoneBody: TypeAlias = Any
else:
    RegisterBody = body_model(protocol.RegisterRequest)
    ClaimBody = body_model(protocol.ClaimRequest)
    HeartbeatBody = body_model(protocol.HeartbeatRequest)
    CompleteBody = body_model(protocol.CompleteRequest)
    ReleaseBody = body_model(protocol.ReleaseRequest)
    OwedHooksBody = body_model(protocol.OwedHooksRequest)
    HooksDoneBody = body_model(protocol.HooksDoneRequest)
