"""Durations as users write them, and clear errors when they are not durations."""

from datetime import timedelta

import pytest

from hightide.core.durations import parse_duration
from hightide.errors import ValidationError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (30, 30.0),
        (1.5, 1.5),
        ("30", 30.0),
        ("30s", 30.0),
        ("500ms", 0.5),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1w", 604800.0),
        ("1h30m", 5400.0),
        (" 1h 30m ", 5400.0),
        (timedelta(minutes=2), 120.0),
    ],
)
def test_valid(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "soon", "5 minutes", "m5", "-5s", -1, True, None, [1], float("nan")])
def test_invalid_names_the_field(bad: object) -> None:
    with pytest.raises(ValidationError, match=r"^delay:"):
        parse_duration(bad, field="delay")  # type: ignore[arg-type]
