"""The limits of every value a client can send: one table, used by the API's models (and so published
in its OpenAPI document) and by the engine's own checks, so that SQLite and PostgreSQL accept and
refuse exactly the same inputs.

Strings are bounded by the column that stores them (``store/schema.py``) and may not contain NUL,
which PostgreSQL text cannot hold. Times and durations are bounded so that every stored time can be
served back as an ISO 8601 date (Python's dates end with year 9999). Whole numbers are bounded by the
smallest integer column of the two databases (PostgreSQL ``integer``, 32 bits).
"""

from __future__ import annotations

import math
from typing import Any

from hightide.errors import ValidationError

# -- strings (characters) -----------------------------------------------------------------------
MAX_ID_LENGTH = 64  # run, token, worker version, worker and version names: String(64)
MAX_NAME_LENGTH = 256  # queue names, concurrency keys, journal names: String(256)
MAX_TASK_ID_LENGTH = 128  # String(256), and its default queue "task/<id>" must fit a queue name
MAX_TAG_LENGTH = 128  # run and token tags (run_tags.tag is String(256); 128 leaves room)
MAX_TAGS = 10
MAX_IDEMPOTENCY_KEY_LENGTH = 512  # String(512)
MAX_SEQ_LENGTH = 128  # a journal position: String(128)
MAX_KIND_LENGTH = 32  # a journal entry's or span's kind: String(32)
MAX_LOG_LEVEL_LENGTH = 16  # String(16)
MAX_SPAN_NAME_LENGTH = 512  # String(512)
MAX_DURATION_TEXT_LENGTH = 64  # '1h30m', or an ISO 8601 date-time for a delay
MAX_TOKEN_LENGTH = 1024  # an opaque value that is not stored (a cursor, a signature, a duration text)
NO_NUL = r"^[^\x00]*$"
"""The pattern of every string the API takes: anything but NUL (PostgreSQL text cannot hold it)."""

# -- numbers ------------------------------------------------------------------------------------
MAX_INT = 2**31 - 1  # attempt and execution numbers, log ids: PostgreSQL `integer`
MAX_DURATION = 10 * 365 * 86400.0  # 10 years: delays, TTLs, timeouts, max_duration, key TTLs
MAX_PRIORITY = 30 * 86400.0  # a run can jump a month of queue at most
MIN_TIME = -62135596800.0  # 0001-01-01T00:00:00Z, the first date an ISO 8601 time can name here
MAX_TIME = 221845392000.0  # 9000-01-01T00:00:00Z: any time plus MAX_DURATION is still a date
MAX_PAGE = 1000  # items per page of a listing

# -- run metadata -------------------------------------------------------------------------------
MAX_METADATA_BYTES = 256 * 1024  # a run's metadata as stored (compact JSON, UTF-8), SPEC §5
MAX_METADATA_OPERATIONS = 1000  # operations per list of one request (the runner sends fewer, culled)


def describe_duration(seconds: float) -> str:
    return "10 years" if seconds == MAX_DURATION else f"{seconds:g} s"


def duration_problem(seconds: float) -> str | None:
    """Why ``seconds`` is not a duration the API takes (finite, 0 to ``MAX_DURATION``), or None.
    One text for the engine's checks (``check_duration``) and the API's models."""
    if not math.isfinite(seconds) or seconds < 0:
        return "must be a finite, non-negative duration"
    if seconds > MAX_DURATION:
        return f"{seconds:g} s is longer than the limit of {describe_duration(MAX_DURATION)} ({MAX_DURATION:g} s)"
    return None


def check_duration(seconds: float, field: str) -> float:
    """``seconds`` if it is a finite duration from 0 to ``MAX_DURATION``, else a ``ValidationError``."""
    problem = duration_problem(seconds)
    if problem is not None:
        details: dict[str, Any] = {"field": field}
        if seconds > MAX_DURATION:
            details["limit"] = MAX_DURATION
        raise ValidationError(f"{field}: {problem}", details=details)
    return seconds


def check_time(ts: float, field: str) -> float:
    """``ts`` (seconds since the epoch) if it lies from year 1 to before year 9000."""
    if not math.isfinite(ts) or not MIN_TIME <= ts < MAX_TIME:
        raise ValidationError(
            f"{field}: times must be from year 1 to before year 9000 (seconds since the epoch from "
            f"{MIN_TIME:g} to {MAX_TIME:g})",
            details={"field": field, "limit": MAX_TIME},
        )
    return ts


def check_text(value: Any, field: str, max_length: int, *, required: bool = True) -> str:
    """``value`` if it is a string of 1 (or 0, if not ``required``) to ``max_length`` characters, no NUL."""
    low = 1 if required else 0
    if not isinstance(value, str) or not low <= len(value) <= max_length:
        raise ValidationError(
            f"{field}: expected a string of {low} to {max_length} characters", details={"field": field}
        )
    if "\x00" in value:
        raise ValidationError(f"{field}: must not contain a NUL character (\\u0000)", details={"field": field})
    return value
