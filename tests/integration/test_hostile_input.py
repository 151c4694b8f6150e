"""Values the server could not store or serve back are refused with a 422 naming the field and the
limit, the same on SQLite and PostgreSQL, and nothing stored can break a listing (SPEC §4, §8)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from hightide.core.limits import MAX_NAME_LENGTH
from hightide.store import open_store
from tests.integration.conftest import Stack
from tests.support import assert_eventually

NUL = "a\x00b"
FAR = "9999-12-31T23:59:59.999999Z"


def _error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    return response.json()["error"]


def _trigger(http: httpx.Client, options: dict[str, Any], task: str = "echo") -> httpx.Response:
    return http.post(f"/api/v1/tasks/{task}/trigger", json={"payload": {}, "options": options})


def _listings_still_work(http: httpx.Client) -> None:
    for path in ("/api/v1/runs", "/api/v1/waitpoints/tokens"):
        response = http.get(path, params={"limit": 1000})
        assert response.status_code == 200, response.text


# -- far-future times and durations ----------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"delay": "999999999999d"}, "options.delay"),
        ({"delay": 1e308}, "options.delay"),
        ({"delay": "9999-12-31T00:00:00Z"}, "options.delay"),
        ({"ttl": 1e308}, "options.ttl"),
        ({"ttl": "522w"}, "options.ttl"),
        ({"idempotency_key": "k", "idempotency_key_ttl": "4000d"}, "options.idempotency_key_ttl"),
        ({"priority": 1e308}, "options.priority"),
    ],
)
def test_far_future_trigger_options_are_refused(http: httpx.Client, options: dict[str, Any], field: str) -> None:
    error = _error(_trigger(http, options))
    assert error["message"].startswith(field), error
    assert any(limit in error["message"] for limit in ("10 years", "315360000", "9000", "2592000")), error
    _listings_still_work(http)


@pytest.mark.parametrize("timeout", [1e17, "999999999999d", "11000d"])
def test_far_future_token_timeout_is_refused(http: httpx.Client, timeout: Any) -> None:
    error = _error(http.post("/api/v1/waitpoints/tokens", json={"timeout": timeout}))
    assert "timeout" in error["message"]
    _listings_still_work(http)


def test_a_delay_of_nearly_ten_years_is_served_back(http: httpx.Client) -> None:
    response = _trigger(http, {"delay": "3649d"})
    assert response.status_code == 200, response.text
    run_id = response.json()["id"]
    run = http.get(f"/api/v1/runs/{run_id}").json()
    assert run["status"] == "DELAYED" and run["delay_until"] > "2036"
    reschedule = http.post(f"/api/v1/runs/{run_id}/reschedule", json={"delay": "99999999w"})
    assert "10 years" in _error(reschedule)["message"]
    assert http.post(f"/api/v1/runs/{run_id}/cancel").status_code == 200
    _listings_still_work(http)


def test_a_task_waiting_past_year_9000_fails_with_the_limit(http: httpx.Client) -> None:
    """The SDK refuses the wait in the task: the run fails saying why, and the worker's reports
    (shared with other runs) are not refused for it."""
    response = http.post("/api/v1/tasks/parent-waits/trigger", json={"payload": {"n": 1, "sleep": 1e12}})
    assert response.status_code == 200, response.text
    run_id = response.json()["id"]

    def failed() -> dict[str, Any]:
        run = http.get(f"/api/v1/runs/{run_id}").json()
        assert run["is_finished"], run
        return run

    run = assert_eventually(failed, timeout=60)
    assert run["status"] == "FAILED" and "9000" in run["error"]["message"], run
    _listings_still_work(http)


def test_a_journal_wait_past_year_9000_is_refused(http: httpx.Client) -> None:
    body = {"attempt": 1, "seq": "0", "kind": "wait", "resume_at": 1e308}
    error = _error(http.post("/api/v1/runs/run_nope/journal", json=body))
    assert error["message"].startswith("resume_at"), error


# -- NUL characters and overlong strings ------------------------------------------------------
@pytest.mark.parametrize(
    "options",
    [
        {"idempotency_key": NUL},
        {"tags": [NUL]},
        {"queue": NUL},
        {"concurrency_key": NUL},
        {"machine": NUL},
        {"version": NUL},
        {"parent_run_id": NUL},
        {"delay": NUL},
        {"ttl": NUL},
    ],
)
def test_nul_in_a_trigger_option_is_refused(http: httpx.Client, options: dict[str, Any]) -> None:
    [name] = options
    error = _error(_trigger(http, options))
    assert error["message"].startswith(f"options.{name}") and "NUL" in error["message"], error


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/api/v1/tasks/ec%00ho/trigger", {"json": {"payload": {}}}),
        ("POST", "/api/v1/tasks/batch", {"json": {"items": [{"task": NUL, "payload": {}}]}}),
        ("GET", "/api/v1/runs/run%00x", {}),
        ("GET", "/api/v1/runs", {"params": {"tag": NUL}}),
        ("GET", "/api/v1/runs", {"params": {"task": NUL}}),
        ("GET", "/api/v1/runs", {"params": {"parent": NUL}}),
        ("GET", "/api/v1/runs", {"params": {"status": NUL}}),
        ("GET", "/api/v1/runs", {"params": {"cursor": NUL}}),
        ("GET", "/api/v1/waitpoints/tokens", {"params": {"tag": NUL}}),
        ("GET", "/api/v1/waitpoints/tokens/wp%00x", {}),
        ("POST", "/api/v1/waitpoints/tokens", {"json": {"tags": [NUL]}}),
        ("POST", "/api/v1/waitpoints/tokens", {"json": {"idempotency_key": NUL}}),
        ("POST", "/api/v1/idempotency-keys/reset", {"json": {"task_id": "echo", "key": NUL}}),
        ("POST", "/api/v1/worker/heartbeat", {"json": {"worker_id": NUL, "runs": []}}),
        ("POST", "/api/v1/worker/claim", {"json": {"worker_id": "w", "version_id": NUL, "wait": 0}}),
    ],
)
def test_nul_anywhere_is_refused(http: httpx.Client, method: str, path: str, kwargs: dict[str, Any]) -> None:
    assert "NUL" in _error(http.request(method, path, **kwargs))["message"]


@pytest.mark.parametrize("name", ["queue", "concurrency_key"])
def test_a_name_longer_than_its_column_is_refused(http: httpx.Client, name: str) -> None:
    error = _error(_trigger(http, {name: "q" * (MAX_NAME_LENGTH + 1)}))
    assert error["message"].startswith(f"options.{name}") and str(MAX_NAME_LENGTH) in error["message"]
    response = _trigger(http, {name: "q" * MAX_NAME_LENGTH})
    assert response.status_code == 200, response.text


def test_nul_inside_a_json_payload_is_stored_and_served_back(client: Any, http: httpx.Client) -> None:
    """JSON strings may hold "\\u0000": payloads are stored as JSON text, escaped, on both backends."""
    payload = {"text": NUL, NUL: [NUL]}
    response = http.post("/api/v1/tasks/echo/trigger", json={"payload": payload, "options": {"metadata": {"m": NUL}}})
    assert response.status_code == 200, response.text
    run_id = response.json()["id"]

    def completed() -> dict[str, Any]:
        run = http.get(f"/api/v1/runs/{run_id}").json()
        assert run["status"] == "COMPLETED", run
        return run

    run = assert_eventually(completed, timeout=30)
    assert run["payload"] == payload and run["metadata"] == {"m": NUL}
    token = http.post("/api/v1/waitpoints/tokens", json={}).json()
    done = http.post(f"/api/v1/waitpoints/tokens/{token['id']}/complete", json={"data": {"d": NUL}})
    assert done.status_code == 200 and done.json()["output"] == {"d": NUL}, done.text


# -- integers beyond the database's ------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/worker/heartbeat", {"worker_id": "w", "runs": [{"run_id": "run_x", "attempt": 2**63}]}),
        ("/api/v1/worker/complete", {"worker_id": "w", "results": [{"run_id": "run_x", "attempt": 2**63, "ok": True}]}),
        (
            "/api/v1/worker/complete",
            {"worker_id": "w", "logs": [{"run_id": "run_x", "attempt": 2**63, "time": 0, "message": "m"}]},
        ),
        ("/api/v1/runs/run_x/journal", {"attempt": 2**63, "seq": "0", "kind": "step"}),
        ("/api/v1/runs/run_x/journal", {"attempt": 1, "execution": 2**31, "seq": "0", "kind": "step"}),
    ],
)
def test_an_attempt_beyond_the_database_integers_is_refused(http: httpx.Client, path: str, body: dict) -> None:
    error = _error(http.post(path, json=body))
    assert "attempt" in error["message"] or "execution" in error["message"]
    assert str(2**31 - 1) in error["message"]


def test_a_log_cursor_beyond_the_database_integers_is_refused(http: httpx.Client) -> None:
    assert "after" in _error(http.get("/api/v1/runs/run_x/logs", params={"after": 2**63}))["message"]


# -- serialisation is total --------------------------------------------------------------------
def test_a_stored_time_past_the_calendar_does_not_break_listings(stack: Stack, http: httpx.Client) -> None:
    """A row written before the limits (or by hand) with times no date can name is served clamped."""
    run_id = http.post("/api/v1/tasks/echo/trigger", json={"payload": {}}).json()["id"]
    assert_eventually(lambda: http.get(f"/api/v1/runs/{run_id}").json()["status"] == "COMPLETED", timeout=30)
    token_id = http.post("/api/v1/waitpoints/tokens", json={}).json()["id"]
    assert http.post(f"/api/v1/waitpoints/tokens/{token_id}/complete", json={}).status_code == 200
    store = open_store(stack.database_url)  # the store's own URL handling, for both backends
    engine = create_engine(store.engine.url)
    store.close()
    try:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE runs SET delay_until = 1e308, ttl_expires_at = -1e308, priority = 1e308 WHERE id = :id"),
                {"id": run_id},
            )
            conn.execute(text("UPDATE waitpoints SET timeout_at = 1e308 WHERE id = :id"), {"id": token_id})
    finally:
        engine.dispose()
    run = http.get(f"/api/v1/runs/{run_id}")
    assert run.status_code == 200, run.text
    assert run.json()["delay_until"] == FAR and run.json()["ttl_expires_at"].startswith("0001-01-01")
    listed = http.get("/api/v1/runs", params={"limit": 1000})
    assert listed.status_code == 200 and run_id in [r["id"] for r in listed.json()["data"]]
    tokens = http.get("/api/v1/waitpoints/tokens", params={"limit": 1000})
    assert tokens.status_code == 200, tokens.text
    assert [t["timeout_at"] for t in tokens.json()["data"] if t["id"] == token_id] == [FAR]
