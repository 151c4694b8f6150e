"""What a new user trips over, through a real server and worker on both backends: payloads checked
with the task's model (and as leniently as Pydantic by the server), failures that no retry can fix
failing at once, durable calls from a plain ``def``, machine presets, versions, and ttl after a delay."""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from types import ModuleType

import httpx
import pytest

from hightide import Client, PayloadValidationError, RunStatus, ValidationError, configure
from hightide.sdk import defaults
from tests.integration.conftest import PROJECT, Stack
from tests.support import assert_eventually, wait_finished


@pytest.fixture
async def tasks(stack: Stack) -> AsyncIterator[ModuleType]:
    """The project's task module imported here, as an app that triggers them by object would, with
    the SDK configured for the test server."""
    spec = importlib.util.spec_from_file_location("it_papercuts", PROJECT / "trigger" / "papercuts.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    before = dict(defaults._settings)
    configure(api_url=stack.url, secret_key=stack.key)
    yield module
    for sdk_client in list(defaults._clients.values()):
        await sdk_client.aclose()  # its connections belong to this test's event loop
    defaults._settings.clear()
    defaults._settings.update(before)
    defaults._clients.clear()


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    return response.json()["error"]


# -- payloads ------------------------------------------------------------------------------------


async def test_a_field_validator_refuses_the_payload_at_trigger_through_the_task(
    tasks: ModuleType, client: Client
) -> None:
    with pytest.raises(PayloadValidationError) as info:
        await tasks.signup.trigger({"email": "ada.example.com", "age": 36})
    assert info.value.message == "payload.email: Value error, an email address has an @ (task 'signup')"
    with pytest.raises(PayloadValidationError, match=r"items\[1\]\.payload\.age: Input should be a valid integer"):
        await tasks.signup.batch_trigger(
            [{"payload": {"email": "a@x", "age": 1}}, {"payload": {"email": "b@x", "age": "old"}}]
        )
    assert not [r for r in client.runs.list(task="signup", limit=50) if r.payload.get("age") == "old"]


async def test_a_string_of_digits_for_an_int_is_accepted_by_object_and_by_id(tasks: ModuleType, client: Client) -> None:
    by_object = await tasks.signup.trigger({"email": "ada@example.com", "age": "36"})
    by_id = client.trigger("signup", {"email": "bob@example.com", "age": "41"})
    for handle, expected in ((by_object, 37), (by_id, 42)):
        run = wait_finished(client, handle.id)
        assert run.status == RunStatus.COMPLETED, run.error
        assert run.output["age_next_year"] == expected
    # The payload is stored as it was given: what the dashboard shows is what the caller sent.
    assert client.runs.retrieve(by_object.id).payload == {"email": "ada@example.com", "age": "36"}


def test_the_server_still_refuses_what_pydantic_refuses(http: httpx.Client) -> None:
    error = _error(http.post("/api/v1/tasks/signup/trigger", json={"payload": {"email": "a@x", "age": "old"}}), 422)
    assert error["message"] == "payload.age: 'old' is not a valid integer (task 'signup')"


_SHOWN = repr("1" * 40)


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        # Pydantic reads a float from any run of digits (this one as inf) and refuses an int this long.
        ({"ratio": "1" * 60_000}, 200, None),
        ({"count": "1" * 60_000}, 422, f"payload.count: {_SHOWN}... (60,000 characters) is not a valid integer"),
        ({"ratio": "1" * 5000 + "x"}, 422, f"payload.ratio: {_SHOWN}... (5,001 characters) is not a valid number"),
        ({"count": "1" * 5000 + "x"}, 422, f"payload.count: {_SHOWN}... (5,001 characters) is not a valid integer"),
        ({"ratio": " 1.5 ", "count": "1_000"}, 200, None),
    ],
)
def test_long_numeric_text_is_checked_at_once_while_the_server_serves_others(
    stack: Stack, payload: dict, status: int, message: str | None
) -> None:
    # A check that backtracks holds the GIL: every other request of the server would wait for it.
    with stack.http() as http, stack.http() as other, ThreadPoolExecutor(1) as pool:
        http.timeout = other.timeout = httpx.Timeout(120)
        pending = pool.submit(http.post, "/api/v1/tasks/measure/trigger", json={"payload": payload})
        assert other.get("/healthz").json() == {"status": "ok"}
        response = pending.result()
    assert response.status_code == status, response.text[:500]
    if message is not None:
        assert response.json()["error"]["message"] == f"{message} (task 'measure')"


def test_a_trigger_inside_a_run_is_validated_with_the_model(client: Client) -> None:
    run = wait_finished(client, client.trigger("signup-parent", {"email": "nope", "age": 3}).id)
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.output == {"refused": "payload.email: Value error, an email address has an @ (task 'signup')"}
    ok = wait_finished(client, client.trigger("signup-parent", {"email": "a@x", "age": "3"}).id)
    assert ok.output == {"child": {"email": "a@x", "age_next_year": 4}}


def test_a_payload_the_runner_refuses_fails_at_once_despite_retries(client: Client) -> None:
    # The server cannot run a field validator: the runner can, and no retry would change its answer.
    run = wait_finished(client, client.trigger("signup", {"email": "ada.example.com", "age": 36}).id)
    assert run.status == RunStatus.FAILED
    assert run.attempt_count == 1  # the task allows 3 attempts
    assert run.error["name"] == "PayloadValidationError" and run.error["kind"] == "invalid"
    assert run.error["message"] == "payload.email: Value error, an email address has an @ (task 'signup')"


def test_an_output_that_is_not_json_fails_at_once(client: Client) -> None:
    run = wait_finished(client, client.trigger("bad-output", {}).id)
    assert run.status == RunStatus.FAILED and run.attempt_count == 1
    assert run.error["name"] == "OutputSerializationError" and run.error["kind"] == "invalid"
    assert "the output of task 'bad-output' is not JSON-serialisable" in run.error["message"]


# -- durable calls need an async def -------------------------------------------------------------


@pytest.mark.parametrize("task_id", ["sync-wait", "sync-wait-swallowed"])
def test_a_plain_def_task_calling_wait_fails_with_a_clear_message(client: Client, task_id: str) -> None:
    run = wait_finished(client, client.trigger(task_id, {}).id)
    assert run.status == RunStatus.FAILED and run.attempt_count == 1
    assert run.output is None
    assert run.error["name"] == "DurableCallError" and run.error["kind"] == "invalid"
    assert run.error["message"].startswith(
        "durable calls need an `async def` task: wait.for_() was called from a plain `def` task"
    )


def test_a_durable_call_never_awaited_fails_the_run(client: Client) -> None:
    run = wait_finished(client, client.trigger("forgot-await", {}).id)
    assert run.status == RunStatus.FAILED and run.attempt_count == 1
    assert run.error["name"] == "DurableCallError"
    assert "wait.for_() was never awaited" in run.error["message"] and "`await wait.for_()`" in run.error["message"]


# -- machines and versions -----------------------------------------------------------------------


def test_an_unknown_machine_is_a_422_naming_the_presets(http: httpx.Client, client: Client) -> None:
    error = _error(http.post("/api/v1/tasks/echo/trigger", json={"payload": {}, "options": {"machine": "huge"}}), 422)
    assert error["message"] == (
        "options.machine: unknown machine 'huge'; expected one of micro, small-1x, small-2x, medium-1x, "
        "medium-2x, large-1x, large-2x"
    )
    items = [{"payload": {}}, {"payload": {}, "options": {"machine": "huge"}}]
    error = _error(http.post("/api/v1/tasks/echo/batch", json={"items": items}), 422)
    assert error["message"].startswith("items[1].options.machine: unknown machine 'huge'")
    with pytest.raises(ValidationError, match="unknown machine 'huge'"):
        client.trigger("echo", {}, machine="huge")
    run = wait_finished(client, client.trigger("echo", {}, machine="large-1x").id)
    assert run.status == RunStatus.COMPLETED


def test_a_version_is_refused_until_deploys_exist(http: httpx.Client, client: Client) -> None:
    body = {"payload": {}, "options": {"version": "20261124.1"}}
    error = _error(http.post("/api/v1/tasks/echo/trigger", json=body), 422)
    assert error["message"].startswith("options.version: pinning a run to a version needs deploys")
    with pytest.raises(ValidationError, match="needs deploys"):
        client.trigger("echo", {}, version="20261124.1")


# -- ttl -----------------------------------------------------------------------------------------


def test_a_delayed_runs_ttl_counts_from_when_it_is_queued(client: Client) -> None:
    # A 2 s delay and a 1 s ttl: counted from the trigger, the run would expire while still delayed.
    handle = client.trigger("never-runs", {}, delay="2s", ttl="1s")
    delayed = client.runs.retrieve(handle.id)
    assert delayed.status == RunStatus.DELAYED
    assert delayed.delay_until is not None and delayed.ttl_expires_at == delayed.delay_until + timedelta(seconds=1)

    def queued() -> object:
        run = client.runs.retrieve(handle.id)
        assert run.status == RunStatus.QUEUED, f"{handle.id} is {run.status}"
        return run

    assert_eventually(queued, timeout=30, interval=0.05)
    run = wait_finished(client, handle.id)
    assert run.status == RunStatus.EXPIRED
    assert run.finished_at is not None and run.finished_at >= delayed.delay_until + timedelta(seconds=1)
