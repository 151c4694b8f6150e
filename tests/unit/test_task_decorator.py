"""@task: options are validated at import time, the manifest describes the task, and the runner
calls the function with a validated payload and the context."""

from __future__ import annotations

import dataclasses
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator

from hightide import Context, configure, queue, task
from hightide.config import ProjectConfig
from hightide.core.failures import Failure, FailureKind
from hightide.core.protocol import Execution
from hightide.errors import (
    ConfigError,
    HightideConnectionError,
    OutputSerializationError,
    PayloadValidationError,
    ValidationError,
)
from hightide.sdk import defaults
from hightide.sdk.task import registry
from hightide.worker.loader import load_tasks
from tests.support import free_port


class Item(BaseModel):
    sku: str
    count: int = 1


@pytest.fixture(autouse=True)
def _clean_registry():
    before = dict(registry)
    yield
    registry.clear()
    registry.update(before)


def _ctx(task_id: str, attempt: int = 1) -> Context:
    return Context.from_execution(Execution(run_id="run_x", attempt=attempt, task_id=task_id, tags=("a",)))


def test_manifest_describes_the_task() -> None:
    @task(id="unit-manifest", retry={"max_attempts": 7}, queue={"concurrency_limit": 2}, max_duration=30)
    async def fn(payload: Item) -> dict:
        """Does a thing."""
        return {}

    entry = fn.manifest()
    assert entry["id"] == "unit-manifest"
    assert entry["description"] == "Does a thing."
    assert entry["retry"]["max_attempts"] == 7 and entry["retry"]["factor"] == 2
    assert entry["queue"] == {"name": "task/unit-manifest", "concurrency_limit": 2}
    assert entry["max_duration"] == 30
    assert entry["payload_schema"]["required"] == ["sku"]


def test_project_defaults_apply_under_the_task_options() -> None:
    @task(id="unit-defaults", retry={"factor": 3})
    async def fn(payload: dict) -> None: ...

    entry = fn.manifest(default_retry={"max_attempts": 9, "factor": 1.5}, default_max_duration=100)
    assert entry["retry"]["max_attempts"] == 9 and entry["retry"]["factor"] == 3
    assert entry["max_duration"] == 100


def test_shared_queue() -> None:
    emails = queue(name="emails", concurrency_limit=5)

    @task(id="unit-queue", queue=emails)
    async def fn(payload: dict) -> None: ...

    assert fn.manifest()["queue"] == {"name": "emails", "concurrency_limit": 5}


async def test_execute_validates_converts_and_passes_ctx() -> None:
    @task(id="unit-exec")
    async def fn(payload: Item, ctx: Context) -> dict:
        return {
            "sku": payload.sku,
            "count": payload.count,
            "attempt": ctx.attempt.number,
            "at": datetime(2026, 1, 1, tzinfo=UTC),
        }

    out = await fn.execute({"sku": "A1"}, _ctx("unit-exec", attempt=2))
    assert out == {"sku": "A1", "count": 1, "attempt": 2, "at": "2026-01-01T00:00:00Z"}
    with pytest.raises(ValidationError, match="sku"):
        await fn.execute({"count": 2}, _ctx("unit-exec"))


async def test_plain_functions_and_dataclass_outputs() -> None:
    @dataclasses.dataclass
    class Out:
        total: int

    @task(id="unit-sync")
    def fn(payload: dict) -> Out:
        return Out(total=payload["a"] + payload["b"])

    assert await fn.execute({"a": 1, "b": 2}, _ctx("unit-sync")) == {"total": 3}


async def test_non_json_output_is_a_clear_error() -> None:
    @task(id="unit-bad-output")
    async def fn(payload: dict) -> object:
        return object()

    with pytest.raises(OutputSerializationError, match="not JSON-serialisable"):
        await fn.execute({}, _ctx("unit-bad-output"))


def test_bare_decorator_uses_the_function_name() -> None:
    @task
    async def send_email(payload: dict) -> None: ...

    assert send_email.id == "send-email"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"id": "has space"}, "task id"),
        ({"id": "ok", "machine": "huge"}, "machine must be one of"),
        ({"id": "ok", "retry": {"max_attempts": 0}}, "max_attempts"),
        ({"id": "ok", "queue": {"limit": 3}}, "unknown queue option"),
        ({"id": "ok", "ttl": "soon"}, "ttl"),
    ],
)
def test_bad_options_fail_at_import_time(kwargs: dict, message: str) -> None:
    with pytest.raises((ConfigError, ValidationError), match=message):

        @task(**kwargs)
        async def fn(payload: dict) -> None: ...


def test_duplicate_ids_are_refused() -> None:
    @task(id="unit-dup")
    async def one(payload: dict) -> None: ...

    with pytest.raises(ConfigError, match="defined twice"):

        @task(id="unit-dup")
        async def two(payload: dict) -> None: ...


def test_too_many_parameters_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"\(payload, ctx: Context\)"):

        @task(id="unit-params")
        async def fn(payload: dict, other: int) -> None: ...


def test_the_connection_error_has_its_public_name() -> None:
    import hightide
    import hightide.errors

    assert hightide.HightideConnectionError.__name__ == "HightideConnectionError"
    assert hightide.HightideConnectionError is hightide.errors.HightideConnectionError
    assert not hasattr(hightide.errors, "ConnectionError_") and not hasattr(hightide, "ConnectionError_")


class Signup(BaseModel):
    email: str
    age: int

    @field_validator("email")
    @classmethod
    def _has_at(cls, value: str) -> str:
        if "@" not in value:
            raise ValueError("an email address has an @")
        return value


@pytest.fixture
def unreachable_server():
    """The SDK pointed at a port nobody listens on: a call that reaches the network fails with
    ``HightideConnectionError``, so any other error was raised before sending."""
    before = dict(defaults._settings)
    configure(api_url=f"http://127.0.0.1:{free_port()}", secret_key="ht_dev_unit")
    yield
    defaults._settings.clear()
    defaults._settings.update(before)
    defaults._clients.clear()


async def test_trigger_validates_with_the_model_before_sending(unreachable_server: None) -> None:
    @task(id="unit-signup")
    async def fn(payload: Signup) -> None: ...

    with pytest.raises(PayloadValidationError) as info:
        await fn.trigger({"email": "ada.example.com", "age": "many"})
    assert info.value.message == (
        "payload.email: Value error, an email address has an @; "
        "payload.age: Input should be a valid integer, unable to parse string as an integer (task 'unit-signup')"
    )
    assert isinstance(info.value, ValidationError) and info.value.details["field"] == "payload.email"
    with pytest.raises(PayloadValidationError, match=r"items\[1\]\.payload\.email: Value error"):
        await fn.batch_trigger([{"payload": {"email": "a@b", "age": 1}}, {"payload": {"email": "b", "age": 2}}])
    with pytest.raises(HightideConnectionError):  # "12" for an int passes, as in Pydantic: it is sent
        await fn.trigger({"email": "ada@example.com", "age": "12"})


async def test_trigger_refuses_an_unknown_machine_before_sending(unreachable_server: None) -> None:
    @task(id="unit-machine")
    async def fn(payload: dict) -> None: ...

    with pytest.raises(ValidationError, match=r"options.machine: unknown machine 'xl'; expected one of micro, "):
        await fn.trigger({}, machine="xl")
    with pytest.raises(ValidationError, match=r"items\[0\]\.options\.machine: unknown machine"):
        await fn.batch_trigger([{"payload": {}, "options": {"machine": "xl"}}])


def test_retries_disabled_give_every_task_one_attempt() -> None:
    @task(id="unit-no-retries", retry={"max_attempts": 5, "factor": 3})
    async def fn(payload: dict) -> None: ...

    entry = fn.manifest(default_retry={"max_attempts": 4}, retries_enabled=False)
    assert entry["retry"]["max_attempts"] == 1 and entry["retry"]["factor"] == 3
    assert fn.manifest(default_retry={"max_attempts": 4})["retry"]["max_attempts"] == 5


class Csv(BaseModel):
    values: Annotated[list[int], BeforeValidator(lambda v: v.split(",") if isinstance(v, str) else v)]


class Aliased(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    user_id: int = Field(alias="userId")


class Stripped(BaseModel):
    code: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2)]


def test_the_server_checks_the_schema_only_when_it_describes_the_model() -> None:
    @task(id="unit-described")
    async def described(payload: Signup) -> None: ...

    @task(id="unit-reshaped")
    async def reshaped(payload: Csv) -> None: ...

    @task(id="unit-untyped")
    async def untyped(payload: dict[str, Any]) -> None: ...

    assert described.manifest()["payload_schema_checked"] is True
    assert reshaped.manifest()["payload_schema_checked"] is False  # "1,2" is valid: its schema says array
    assert reshaped.manifest()["payload_schema"]["properties"]["values"]["type"] == "array"  # still shown
    assert untyped.manifest()["payload_schema_checked"] is True

    @task(id="unit-aliased")
    async def aliased(payload: Aliased) -> None: ...

    @task(id="unit-stripped")
    async def stripped(payload: Stripped) -> None: ...

    # {"user_id": 1} and {"code": " ab "} are valid, though their schemas say otherwise
    assert aliased.manifest()["payload_schema_checked"] is False
    assert stripped.manifest()["payload_schema_checked"] is False


async def test_a_payload_failing_the_model_in_the_runner_is_not_retried() -> None:
    @task(id="unit-runner-payload")
    async def fn(payload: Signup) -> None: ...

    with pytest.raises(PayloadValidationError) as info:
        await fn.execute({"email": "nope", "age": 1}, _ctx("unit-runner-payload"))
    failure = Failure.from_exception(info.value)
    assert (failure.name, failure.kind) == ("PayloadValidationError", FailureKind.INVALID)
    assert failure.message.startswith("payload.email: Value error, an email address has an @")
    with pytest.raises(OutputSerializationError) as bad_output:
        await _bad_output_task().execute({}, _ctx("unit-bad-output-2"))
    assert Failure.from_exception(bad_output.value).kind == FailureKind.INVALID


def _bad_output_task() -> Any:
    @task(id="unit-bad-output-2")
    async def fn(payload: dict) -> object:
        return {"when": object()}

    return fn


def test_the_loader_disables_retries_only_in_dev(tmp_path) -> None:
    (tmp_path / "trigger").mkdir()
    (tmp_path / "trigger" / "unit_loaded.py").write_text(
        "from hightide import task\n\n"
        "@task(id='unit-loaded', retry={'max_attempts': 6})\n"
        "async def unit_loaded(payload: dict) -> None: ...\n"
    )
    config = ProjectConfig(root=tmp_path, retries={"enabled_in_dev": False, "default": {"max_attempts": 2}})
    try:
        dev = {t["id"]: t for t in load_tasks(config, dev=True)["tasks"]}
        deployed = {t["id"]: t for t in load_tasks(config, dev=False)["tasks"]}
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("trigger.unit_loaded", None)
        sys.modules.pop("trigger", None)
    assert dev["unit-loaded"]["retry"]["max_attempts"] == 1
    assert deployed["unit-loaded"]["retry"]["max_attempts"] == 6


def test_a_rate_limit_is_declared_on_a_queue_with_its_period_in_seconds() -> None:
    openai = queue("openai", concurrency_limit=10, rate_limit={"limit": 60, "period": "1m"})

    @task(id="unit-rated", queue=openai)
    async def fn(payload: dict) -> None: ...

    assert fn.manifest()["queue"] == {
        "name": "openai",
        "concurrency_limit": 10,
        "rate_limit": {"limit": 60, "period": 60.0, "per": None},
    }
    per_key = queue("crm", rate_limit={"limit": 5, "period": 1, "per": "concurrency_key"})
    assert per_key.rate_limit is not None and per_key.rate_limit.describe() == "5 per 1s per concurrency key"


@pytest.mark.parametrize(
    ("rate", "says"),
    [
        ({"limit": 0, "period": "1m"}, "rate_limit.limit: expected a whole number from 1"),
        ({"limit": 5}, "rate_limit.period: required"),
        ({"limit": 5, "period": "soon"}, "rate_limit.period"),
        ({"limit": 5, "period": 0}, "expected at least 0.001 s"),
        ({"limit": 5, "period": "1m", "per": "tenant"}, "rate_limit.per: expected 'concurrency_key'"),
        ({"limit": 5, "period": "1m", "burst": 2}, "unknown option(s) ['burst']"),
        ([60, "1m"], "rate_limit: expected {'limit'"),
    ],
)
def test_a_bad_rate_limit_fails_at_import_saying_what_is_wrong(rate: object, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        queue("openai", rate_limit=rate)  # type: ignore[arg-type]
    assert says in str(caught.value) and "queue 'openai'" in str(caught.value)
