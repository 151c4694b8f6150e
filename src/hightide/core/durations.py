"""Durations as users write them: ``30``, ``"30s"``, ``"5m"``, ``"1h30m"``, ``"2d"``, ``"1w"``.

Every duration is at most ``MAX_DURATION`` (10 years): a longer one would put a time past the dates
the API can serve back."""

from __future__ import annotations

import re
from datetime import timedelta

from hightide.core.limits import check_duration
from hightide.errors import ValidationError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(value: str | float | int | timedelta, *, field: str = "duration") -> float:
    """Return ``value`` in seconds; raise ``ValidationError`` naming ``field`` if it is not a duration
    from 0 to 10 years.

    >>> parse_duration("1h30m")
    5400.0
    """
    if isinstance(value, bool):
        raise ValidationError(f"{field}: expected a duration, got a boolean", details={"field": field})
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an integer beyond any float
            seconds = float("inf")
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        seconds = _parse_text(text, value, field)
    else:
        raise ValidationError(
            f"{field}: expected seconds or a string like '30s', '5m', '1h', got {type(value).__name__}",
            details={"field": field},
        )
    return check_duration(seconds, field)


def _parse_text(text: str, original: str, field: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValidationError(
            f"{field}: {original!r} is not a duration; use a number of seconds or units like "
            "'500ms', '30s', '5m', '2h', '1d', '1w' (combinable: '1h30m')",
            details={"field": field},
        )
    return total
