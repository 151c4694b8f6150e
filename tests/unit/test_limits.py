"""The one table of limits, as the engine applies it and as serialisation survives what it missed."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError as PydanticValidationError

from hightide.core.durations import parse_duration
from hightide.core.limits import MAX_DURATION, MAX_ID_LENGTH, MAX_TIME, check_duration, check_text, check_time
from hightide.core.retry import RetryPolicy
from hightide.engine.manifest import check_manifest_task
from hightide.engine.options import spec_from_options
from hightide.engine.tokens import TokenSpec, check_token_spec
from hightide.errors import ValidationError
from hightide.server.models import TriggerOptions
from hightide.server.serialize import iso, number
from hightide.server.worker_bodies import ClaimBody

NOW = 1_800_000_000.0


@pytest.mark.parametrize("value", ["999999999999d", 1e308, 10**400, "3651d", MAX_DURATION + 1, math.inf, math.nan])
def test_durations_beyond_ten_years_are_refused_naming_the_field(value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_duration(value, field="options.ttl")  # type: ignore[arg-type]
    assert caught.value.message.startswith("options.ttl:")


def test_ten_years_is_a_duration() -> None:
    assert parse_duration("3650d") == MAX_DURATION
    with pytest.raises(ValidationError, match="10 years"):
        parse_duration("3651d")


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"delay": "9999-01-01T00:00:00Z"}, "options.delay"),
        ({"delay": "999999999999d"}, "options.delay"),
        ({"ttl": 1e308}, "options.ttl"),
        ({"idempotency_key_ttl": "99999w"}, "options.idempotency_key_ttl"),
        ({"queue": "q" * 257}, "options.queue"),
        ({"queue": "a\x00b"}, "options.queue"),
        ({"concurrency_key": "a\x00b"}, "options.concurrency_key"),
        ({"tags": ["a\x00b"]}, "options.tags[0]"),
        ({"idempotency_key": "a\x00b"}, "options.idempotency_key"),
        ({"version": "v" * 65}, "options.version"),
    ],
)
def test_the_engine_refuses_what_the_api_refuses(options: dict, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        spec_from_options("echo", {}, options, NOW)
    assert caught.value.message.startswith(field)


def test_a_delay_date_before_year_9000_is_kept() -> None:
    spec = spec_from_options("echo", {}, {"delay": "8999-12-31T00:00:00Z"}, NOW)
    assert spec.delay_until is not None and spec.delay_until < MAX_TIME


def test_token_limits() -> None:
    for spec in (TokenSpec(timeout=1e17), TokenSpec(tags=("a\x00",)), TokenSpec(idempotency_key="k\x00")):
        with pytest.raises(ValidationError):
            check_token_spec(spec)
    check_token_spec(TokenSpec(timeout=MAX_DURATION, tags=("ok",), idempotency_key="k"))


@pytest.mark.parametrize(
    "task",
    [
        {"id": "t" * 129},
        {"id": "a\x00"},
        {"id": "t", "queue": {"name": "q" * 257}},
        {"id": "t", "queue": {"name": "q", "concurrency_limit": 2**31}},
        {"id": "t", "max_duration": 1e308},
        {"id": "t", "ttl": 1e12},
        {"id": "t", "retry": {"max_timeout": 1e308}},
    ],
)
def test_a_manifest_cannot_declare_what_cannot_be_stored(task: dict) -> None:
    with pytest.raises(ValidationError):
        check_manifest_task(task, "manifest.tasks[0]")


def test_a_large_retry_factor_is_capped_not_an_overflow() -> None:
    policy = RetryPolicy(max_attempts=100, factor=1e300, min_timeout=1, max_timeout=60, randomize=False)
    assert policy.delay(99) == 60


def test_text_and_time_checks() -> None:
    assert check_text("x" * 256, "queue", 256) == "x" * 256
    assert check_time(MAX_TIME - 1, "t") == MAX_TIME - 1
    for bad in (MAX_TIME, math.nan, -1e308):
        with pytest.raises(ValidationError):
            check_time(bad, "t")


@pytest.mark.parametrize(
    ("stored", "served"),
    [
        (1e308, "9999-12-31T23:59:59.999999Z"),
        (math.inf, "9999-12-31T23:59:59.999999Z"),
        (-1e308, "0001-01-01T00:00:00Z"),
        (math.nan, None),
        (0.0, "1970-01-01T00:00:00Z"),
        ("not a time", None),
    ],
)
def test_serialisation_of_times_is_total(stored: object, served: str | None) -> None:
    assert iso(stored) == served


def test_numbers_json_cannot_carry_are_served_as_null() -> None:
    assert number(math.nan) is None and number(math.inf) is None and number(1.5) == 1.5


@pytest.mark.parametrize("seconds", [-1, MAX_DURATION + 1, 1e308])
def test_the_api_and_the_engine_refuse_a_duration_in_the_same_words(seconds: float) -> None:
    with pytest.raises(ValidationError) as engine:
        check_duration(seconds, "options.ttl")
    with pytest.raises(PydanticValidationError) as api:
        TriggerOptions.model_validate({"ttl": seconds})
    assert engine.value.message == f"options.ttl: {api.value.errors()[0]['msg']}"


def test_a_claim_id_is_bounded_by_the_id_limit() -> None:
    schema = ClaimBody.model_json_schema()["properties"]["claim_id"]["anyOf"][0]
    assert schema["maxLength"] == MAX_ID_LENGTH
    ClaimBody.model_validate({"worker_id": "w", "version_id": "v", "claim_id": "c" * MAX_ID_LENGTH})
    with pytest.raises(PydanticValidationError, match=f"at most {MAX_ID_LENGTH} characters"):
        ClaimBody.model_validate({"worker_id": "w", "version_id": "v", "claim_id": "c" * (MAX_ID_LENGTH + 1)})
