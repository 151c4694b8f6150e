"""The limits of the values in worker messages, as plain markers on their types.

``Annotated[str, Text(64)]`` says what the API takes: the server derives its request bodies (and
so the OpenAPI document and its 422s) from these, and a reader of the message sees them here.
The numbers come from ``core/limits.py`` and ``types.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, TypeAlias

from hightide.core import limits


@dataclass(frozen=True)
class Text:
    """A string of ``min_length`` to ``max_length`` characters (unbounded without ``max_length``).
    Without ``pattern``, any character but NUL (PostgreSQL text cannot hold it); with one, only
    what it matches."""

    max_length: int | None = None
    min_length: int = 1
    pattern: str | None = None


@dataclass(frozen=True)
class Range:
    """A number within bounds (``ge`` ≤ value ≤ ``le``, value < ``lt``)."""

    ge: float | None = None
    le: float | None = None
    lt: float | None = None


@dataclass(frozen=True)
class Items:
    """A list of at most ``max_length`` items."""

    max_length: int


@dataclass(frozen=True)
class Doc:
    """What a field means, for the API's documentation."""

    text: str


JSONObject: TypeAlias = dict[str, Any]

Id = Annotated[str, Text(limits.MAX_ID_LENGTH)]
ClaimId = Annotated[str, Text(limits.MAX_ID_LENGTH, pattern=r"^[A-Za-z0-9_.:-]+$")]
"""Chosen by the worker (a UUID): nothing a database could refuse."""
Seq = Annotated[str, Text(limits.MAX_SEQ_LENGTH)]
Kind = Annotated[str, Text(limits.MAX_KIND_LENGTH)]
Level = Annotated[str, Text(limits.MAX_LOG_LEVEL_LENGTH)]
SpanName = Annotated[str, Text(limits.MAX_SPAN_NAME_LENGTH, 0)]
Message = Annotated[str, Text()]
TraceId = Annotated[str, Text(pattern=r"^[0-9a-f]{32}$")]
SpanId = Annotated[str, Text(pattern=r"^[0-9a-f]{16}$")]
Count = Annotated[int, Range(ge=0, le=limits.MAX_INT)]
"""An attempt or execution number: what an INTEGER column holds on both databases."""
Time = Annotated[
    float,
    Range(ge=limits.MIN_TIME, lt=limits.MAX_TIME),
    Doc("seconds since the epoch, from year 1 to before 9000"),
]
