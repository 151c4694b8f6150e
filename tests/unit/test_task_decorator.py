"""@task: options are validated at import time, the manifest describes the task, and the runner
calls the function with a validated payload and the context."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel

from hightide import Context, queue, task
from hightide.errors import ConfigError, ValidationError
from hightide.sdk.task import registry


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
    return Context.from_execution({"run_id": "run_x", "attempt": attempt, "task_id": task_id, "tags": ["a"]})


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

    with pytest.raises(TypeError, match="not JSON-serialisable"):
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
