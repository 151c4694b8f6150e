"""Trigger options are validated before anything is stored, with the failing field named."""

from datetime import UTC, datetime

import pytest

from hightide.engine.options import parse_delay, spec_from_options
from hightide.errors import ValidationError

NOW = 1_800_000_000.0


def test_options_become_a_spec() -> None:
    spec = spec_from_options(
        "t",
        {"a": 1},
        {"delay": "5m", "ttl": "1h", "tags": ["user:42"], "idempotency_key": "k", "max_attempts": 2, "priority": 10},
        NOW,
    )
    assert spec.delay_until == NOW + 300
    assert spec.ttl == 3600
    assert spec.tags == ("user:42",)
    assert (spec.idempotency_key, spec.max_attempts, spec.priority) == ("k", 2, 10.0)


def test_delay_accepts_an_iso_datetime_with_timezone() -> None:
    expected = datetime(2027, 1, 15, 9, tzinfo=UTC).timestamp()
    assert parse_delay("2027-01-15T09:00:00Z", NOW) == expected
    assert parse_delay("2027-01-15T09:00:00+00:00", NOW) == parse_delay("2027-01-15T09:00:00Z", NOW)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        parse_delay("2027-01-15T09:00:00", NOW)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"delay": "later"}, "options.delay"),
        ({"ttl": "-1s"}, "options.ttl"),
        ({"tags": ["x"] * 11}, "options.tags"),
        ({"tags": [1]}, "options.tags"),
        ({"max_attempts": 0}, "options.max_attempts"),
        ({"priority": -1}, "options.priority"),
        ({"idempotency_key": ""}, "options.idempotency_key"),
        ({"metadata": [1]}, "options.metadata"),
        ({"colour": "red"}, "options"),
    ],
)
def test_bad_options_name_the_field(options: dict, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        spec_from_options("t", None, options, NOW, prefix="items[3].")
    assert info.value.message.startswith(f"items[3].{field}")
