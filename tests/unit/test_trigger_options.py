"""Trigger options are validated before anything is stored, with the failing field named."""

import inspect
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from hightide.core import options as core_options
from hightide.core.options import OPTION_NAMES, TRIGGER_OPTIONS, Debounce, Declared, OptionKind
from hightide.engine.options import TriggerSpec, parse_delay, spec_from_options
from hightide.engine.payloads import check_schema
from hightide.errors import ValidationError
from hightide.sdk.client import AsyncClient, trigger_item
from hightide.sdk.task import Task
from hightide.server.models import TriggerBody, TriggerOptions


class Size(IntEnum):
    S = 1
    M = 2


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


def test_an_unknown_machine_is_refused_naming_the_presets() -> None:
    assert spec_from_options("t", None, {"machine": "large-2x"}, NOW).machine == "large-2x"
    with pytest.raises(ValidationError) as info:
        spec_from_options("t", None, {"machine": "huge"}, NOW, prefix="items[1].")
    assert info.value.message.startswith("items[1].options.machine: unknown machine 'huge'")
    assert "micro, small-1x, small-2x, medium-1x, medium-2x, large-1x, large-2x" in info.value.message
    assert info.value.details["allowed"][0] == "micro"


def test_a_version_is_refused_until_deploys_exist() -> None:
    with pytest.raises(ValidationError, match=r"options.version: pinning a run to a version needs deploys"):
        spec_from_options("t", None, {"version": "20261124.1"}, NOW)


def test_what_a_request_names_is_checked_before_its_times() -> None:
    # Several bad options: the unknown machine or the refused version is reported, not the duration.
    with pytest.raises(ValidationError, match=r"^options.machine: unknown machine 'nope'"):
        spec_from_options("t", None, {"machine": "nope", "ttl": "bad"}, NOW)
    with pytest.raises(ValidationError, match=r"^options.version: "):
        spec_from_options("t", None, {"version": "v1", "delay": "soon"}, NOW)


def test_one_string_is_one_tag_in_every_kind_of_trigger() -> None:
    # `trigger(tags="x")`, a trigger inside a run and each item of `batch_trigger` build the same body.
    assert trigger_item(None, 1, {"tags": "vip"})["options"]["tags"] == ["vip"]
    item = trigger_item("t", 1, {"tags": "vip"}, "items[0].options")
    assert item == {"task": "t", "payload": 1, "options": {"tags": ["vip"]}}
    assert spec_from_options("t", 1, item["options"], NOW).tags == ("vip",)


# -- the payload schema, as Pydantic's lax mode reads it ------------------------------------------


class Order(BaseModel):
    order_id: str
    quantity: int = Field(gt=0)
    express: bool = False
    price: float = 1.0
    due: datetime | None = None
    labels: set[str] = set()
    size: Size = Size.S


@pytest.mark.parametrize(
    "payload",
    [
        {"order_id": "o-1", "quantity": "12"},
        {"order_id": "o-1", "quantity": " 12 "},
        {"order_id": "o-1", "quantity": 12.0},
        {"order_id": "o-1", "quantity": 1, "express": "yes"},
        {"order_id": "o-1", "quantity": 1, "express": 1},
        {"order_id": "o-1", "quantity": 1, "price": "1e3"},
        {"order_id": "o-1", "quantity": 1, "due": 1_800_000_000},
        {"order_id": "o-1", "quantity": 1, "labels": ["a", "a"]},
        {"order_id": "o-1", "quantity": 1, "size": "2"},
    ],
)
def test_the_server_accepts_what_pydantic_accepts(payload: dict) -> None:
    TypeAdapter(Order).validate_python(payload)  # Pydantic accepts it...
    check_schema(payload, TypeAdapter(Order).json_schema(), "order")  # ...so the server does


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"order_id": "o-1", "quantity": "many"}, "payload.quantity: 'many' is not a valid integer"),
        ({"order_id": "o-1", "quantity": 0}, "payload.quantity: 0 is less than or equal to the minimum of 0"),
        ({"order_id": "o-1", "quantity": 1, "express": 2}, "payload.express: 2 is greater than the maximum of 1"),
        ({"order_id": "o-1", "quantity": 1, "express": "maybe"}, "payload.express: 'maybe' is not a valid boolean"),
        ({"order_id": 7, "quantity": 1}, "payload.order_id: 7 is not of type 'string'"),
        ({"quantity": 1}, "payload: 'order_id' is a required property"),
    ],
)
def test_the_server_refuses_what_pydantic_refuses_in_every_mode(payload: dict, message: str) -> None:
    with pytest.raises(PydanticValidationError) as info:
        TypeAdapter(Order).validate_python(payload)
    with pytest.raises(ValidationError) as refused:
        check_schema(payload, TypeAdapter(Order).json_schema(), "order")
    assert refused.value.message == f"{message} (task 'order')", info


class Slug(BaseModel):
    slug: str = Field(pattern=r"^(a+)+$")  # backtracks for ever in Python's re on "aaa...!"


class Code(BaseModel):
    model_config = ConfigDict(regex_engine="python-re")
    code: str = Field(pattern=r"^(?=x)x$")  # a look-ahead: Pydantic's Rust regex has none


def test_a_models_own_pattern_is_checked_as_pydantic_checks_it() -> None:
    payload = {"slug": "a" * 100 + "!"}
    with pytest.raises(PydanticValidationError):
        TypeAdapter(Slug).validate_python(payload)
    with pytest.raises(ValidationError) as refused:
        check_schema(payload, TypeAdapter(Slug).json_schema(), "slug")
    assert refused.value.message == f"payload.slug: {'a' * 100 + '!'!r} does not match '^(a+)+$' (task 'slug')"
    check_schema({"slug": "aaa"}, TypeAdapter(Slug).json_schema(), "slug")
    check_schema({"code": "x"}, TypeAdapter(Code).json_schema(), "code")  # left to Python's re
    with pytest.raises(ValidationError, match="'y' does not match"):
        check_schema({"code": "y"}, TypeAdapter(Code).json_schema(), "code")


# -- one definition: the SDK, the API and the engine take the same options ---------------------


def _keywords(fn: object) -> set[str]:
    params = inspect.signature(fn).parameters.values()  # type: ignore[arg-type]
    return {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def test_the_sdk_the_api_and_the_engine_take_the_options_declared() -> None:
    declared = [o.sent_as for o in TRIGGER_OPTIONS]
    assert list(TriggerOptions.model_fields) == declared  # the API's model, in the declared order
    assert _keywords(AsyncClient.trigger) == set(declared)
    assert _keywords(Task.trigger) == set(declared) - {"parent_run_id"}  # inside a run, the run is the parent
    spec_fields = [f.name for f in fields(TriggerSpec) if f.name not in ("task_id", "payload", "trace_parent")]
    assert spec_fields == [f.name for f in fields(core_options.TriggerOptions)]
    assert set(declared) == OPTION_NAMES


# A value of each kind as a user passes it, and as the engine decides it.
_SAMPLES = {
    OptionKind.TEXT: ("q-1", "q-1"),
    OptionKind.DURATION: (timedelta(minutes=5), 300.0),
    OptionKind.DELAY: ("5m", NOW + 300),
    OptionKind.TAGS: ("user:42", ("user:42",)),
    OptionKind.OBJECT: ({"k": 1}, {"k": 1}),
    OptionKind.COUNT: (2, 2),
    OptionKind.SECONDS: (10, 10.0),
    OptionKind.DEBOUNCE: (
        {"key": "user-42", "delay": timedelta(seconds=5), "mode": "trailing", "max_delay": "1m"},
        Debounce("user-42", 5.0, "trailing", 60.0),
    ),
}
_BY_NAME = {"machine": ("large-2x", "large-2x")}


@pytest.mark.parametrize("declared", [o for o in TRIGGER_OPTIONS if o.sent_as != "version"], ids=lambda o: o.sent_as)
def test_each_option_travels_from_the_sdk_through_the_api_to_the_spec(declared: Declared) -> None:
    given, decided = _BY_NAME.get(declared.sent_as) or _SAMPLES[declared.how.kind]
    body = trigger_item(None, {"a": 1}, {declared.sent_as: given})
    sent = TriggerBody.model_validate(body).options.as_dict()
    assert list(sent) == [declared.sent_as]
    spec = spec_from_options("t", body["payload"], sent, NOW)
    assert getattr(spec, declared.name) == decided
    assert TriggerSpec("t", {"a": 1}, **{declared.name: decided}) == spec


@pytest.mark.parametrize(
    ("debounce", "why"),
    [
        ({"delay": "5s"}, "debounce.key"),
        ({"key": "k"}, "debounce.delay: required"),
        ({"key": "k", "delay": "5s", "mode": "sideways"}, "debounce.mode"),
        ({"key": "k", "delay": "5m", "max_delay": "1m"}, "at least the delay"),
        ({"key": "k", "delay": "5s", "extra": 1}, "unknown field"),
        ("user-42", "expected an object"),
    ],
)
def test_a_bad_debounce_is_refused_naming_what(debounce: Any, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        spec_from_options("t", None, {"debounce": debounce}, NOW)


def test_debounce_and_a_delay_together_are_refused() -> None:
    with pytest.raises(ValidationError, match="leave out delay"):
        spec_from_options("t", None, {"debounce": {"key": "k", "delay": "5s"}, "delay": "1m"}, NOW)
