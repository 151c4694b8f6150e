"""Bad input never gives a 500: each gets a 4xx that names the field and the reason."""

import httpx
import pytest

from tests.integration.conftest import Stack


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    return response.json()["error"]


def test_unknown_task(http: httpx.Client) -> None:
    error = _error(http.post("/api/v1/tasks/no-such-task/trigger", json={"payload": {}}), 404)
    assert "no-such-task" in error["message"] and "not registered" in error["message"]


def test_malformed_json(http: httpx.Client) -> None:
    response = http.post(
        "/api/v1/tasks/echo/trigger", content=b'{"payload": {', headers={"Content-Type": "application/json"}
    )
    assert "not valid JSON" in _error(response, 422)["message"]


def test_payload_over_the_limit(http: httpx.Client) -> None:
    error = _error(http.post("/api/v1/tasks/echo/trigger", json={"payload": {"blob": "x" * 70_000}}), 413)
    assert error["code"] == "payload_too_large"
    assert "HIGHTIDE_MAX_PAYLOAD_BYTES" in error["message"]


def test_too_many_batch_items(http: httpx.Client) -> None:
    items = [{"payload": {"i": i}} for i in range(1001)]
    error = _error(http.post("/api/v1/tasks/echo/batch", json={"items": items}), 422)
    assert "1001 items" in error["message"] and "1000" in error["message"]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"delay": "tomorrow-ish"}, "options.delay"),
        ({"ttl": "5 parsecs"}, "options.ttl"),
        ({"max_attempts": 0}, "options.max_attempts"),
    ],
)
def test_invalid_options(http: httpx.Client, options: dict, field: str) -> None:
    error = _error(http.post("/api/v1/tasks/echo/trigger", json={"payload": {}, "options": options}), 422)
    assert error["message"].startswith(field)


def test_unknown_option_is_refused(http: httpx.Client) -> None:
    error = _error(http.post("/api/v1/tasks/echo/trigger", json={"payload": {}, "options": {"colour": "red"}}), 422)
    assert "colour" in error["message"]


def test_payload_failing_the_task_model(http: httpx.Client) -> None:
    error = _error(http.post("/api/v1/tasks/order/trigger", json={"payload": {"order_id": "o1", "quantity": 0}}), 422)
    assert error["details"]["field"] == "payload.quantity"
    assert "0" in error["details"]["reason"]
    error = _error(http.post("/api/v1/tasks/order/trigger", json={"payload": {"quantity": 2}}), 422)
    assert "order_id" in error["message"]


def test_a_batch_with_one_bad_item_creates_nothing(stack: Stack, http: httpx.Client) -> None:
    before = len(http.get("/api/v1/runs", params={"task": "order", "limit": 1000}).json()["data"])
    items = [{"payload": {"order_id": f"o{i}", "quantity": 1}} for i in range(5)]
    items[3]["payload"]["quantity"] = -1
    error = _error(http.post("/api/v1/tasks/order/batch", json={"items": items}), 422)
    assert error["message"].startswith("items[3].payload.quantity")
    after = len(http.get("/api/v1/runs", params={"task": "order", "limit": 1000}).json()["data"])
    assert after == before


def test_bad_query_parameters(http: httpx.Client) -> None:
    assert "status" in _error(http.get("/api/v1/runs", params={"status": "SLEEPY"}), 422)["message"]
    assert "cursor" in _error(http.get("/api/v1/runs", params={"cursor": "garbage"}), 422)["message"]
    assert _error(http.get("/api/v1/runs", params={"limit": 0}), 422)


def test_unknown_run(http: httpx.Client) -> None:
    assert _error(http.get("/api/v1/runs/run_nope"), 404)["code"] == "not_found"


@pytest.mark.parametrize(
    "body",
    [
        b'{"payload": {"x": 1e400}}',
        b'{"payload": {}, "options": {"metadata": {"a": NaN}}}',
        b'{"payload": "\\ud800"}',
        b'{"payload": {}, "options": {"tags": ["\\ud800"]}}',
        b'{"payload": {}, "options": {"idempotency_key": "\\ud800"}}',
    ],
)
def test_values_json_cannot_carry_are_refused(http: httpx.Client, body: bytes) -> None:
    response = http.post("/api/v1/tasks/echo/trigger", content=body, headers={"Content-Type": "application/json"})
    error = _error(response, 422)
    assert "unicode" in error["message"].lower() or "NaN or Infinity" in error["message"]


@pytest.mark.parametrize(
    ("options", "field"), [({"max_attempts": 10**20}, "options.max_attempts"), ({"priority": 1e12}, "options.priority")]
)
def test_numbers_out_of_range(http: httpx.Client, options: dict, field: str) -> None:
    error = _error(http.post("/api/v1/tasks/echo/trigger", json={"payload": {}, "options": options}), 422)
    assert error["message"].startswith(field)
