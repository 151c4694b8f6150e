"""The worker protocol at the HTTP level, with a hand-driven 'worker': leases, stale requests."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.integration.conftest import Stack
from tests.support import assert_eventually


def _register(http: httpx.Client, task_id: str) -> str:
    manifest = {"tasks": [{"id": task_id, "retry": {"max_attempts": 2, "min_timeout": 0, "max_timeout": 0}}]}
    response = http.post("/api/v1/worker/register", json={"manifest": manifest})
    assert response.status_code == 200, response.text
    return response.json()["version_id"]


def _claim(http: httpx.Client, version: str, worker: str, wait: float = 5) -> list[dict]:
    body = {"worker_id": worker, "version_id": version, "max_runs": 10, "wait": wait}
    return http.post("/api/v1/worker/claim", json=body).json()["runs"]


def test_a_silent_worker_loses_its_run_and_a_late_result_is_refused(stack: Stack) -> None:
    task_id = f"manual-{uuid.uuid4().hex[:8]}"
    with stack.hand_driven() as http:
        version = _register(http, task_id)
        run_id = http.post(f"/api/v1/tasks/{task_id}/trigger", json={"payload": {}}).json()["id"]
        [execution] = _claim(http, version, "wkr_a")
        assert execution["run_id"] == run_id and execution["attempt"] == 1

        # No heartbeat: after the 1 s lease the attempt fails as a lost worker and the run is retried.
        def retried() -> bool:
            run = http.get(f"/api/v1/runs/{run_id}").json()
            return run["status"] == "QUEUED" and run["attempts"][0]["error"]["name"] == "WorkerLost"

        assert_eventually(retried, timeout=15)
        late = {"worker_id": "wkr_a", "results": [{"run_id": run_id, "attempt": 1, "ok": True, "output": "late"}]}
        [reply] = http.post("/api/v1/worker/complete", json=late).json()["results"]
        assert reply["accepted"] is False and reply["code"] == "conflict"

        # A second worker gets attempt 2; its heartbeat keeps the lease; its result counts.
        [again] = _claim(http, version, "wkr_b")
        assert again["attempt"] == 2
        beat = {"worker_id": "wkr_b", "runs": [{"run_id": run_id, "attempt": 2}], "wait": 0}
        assert http.post("/api/v1/worker/heartbeat", json=beat).json() == {"stop": []}
        stale = {"worker_id": "wkr_a", "runs": [{"run_id": run_id, "attempt": 1}], "wait": 0}
        assert http.post("/api/v1/worker/heartbeat", json=stale).json() == {"stop": [run_id]}
        done = {"worker_id": "wkr_b", "results": [{"run_id": run_id, "attempt": 2, "ok": True, "output": 42}]}
        assert http.post("/api/v1/worker/complete", json=done).json()["results"][0]["status"] == "COMPLETED"
        # a duplicate report is a clean no-op
        assert http.post("/api/v1/worker/complete", json=done).json()["results"][0]["accepted"] is False
        run = http.get(f"/api/v1/runs/{run_id}").json()
        assert run["status"] == "COMPLETED" and run["output"] == 42


def test_heartbeat_reports_a_cancelled_run_at_once(stack: Stack) -> None:
    task_id = f"manual-{uuid.uuid4().hex[:8]}"
    with stack.hand_driven() as http:
        version = _register(http, task_id)
        run_id = http.post(f"/api/v1/tasks/{task_id}/trigger", json={"payload": {}}).json()["id"]
        _claim(http, version, "wkr_c")
        http.post(f"/api/v1/runs/{run_id}/cancel")
        beat = {"worker_id": "wkr_c", "runs": [{"run_id": run_id, "attempt": 1}], "wait": 5}
        assert http.post("/api/v1/worker/heartbeat", json=beat).json() == {"stop": [run_id]}


def test_claim_long_polls_until_work_arrives(stack: Stack) -> None:
    task_id = f"manual-{uuid.uuid4().hex[:8]}"
    with stack.hand_driven() as http, stack.hand_driven() as other:
        version = _register(http, task_id)
        assert _claim(http, version, "wkr_d", wait=0) == []
        import threading

        got: list[dict] = []
        poller = threading.Thread(target=lambda: got.extend(_claim(http, version, "wkr_d", wait=20)))
        poller.start()
        run_id = other.post(f"/api/v1/tasks/{task_id}/trigger", json={"payload": {}}).json()["id"]
        poller.join(timeout=20)
        assert [e["run_id"] for e in got] == [run_id]


def test_registration_refuses_a_bad_manifest(stack: Stack) -> None:
    with stack.hand_driven() as http:
        response = http.post("/api/v1/worker/register", json={"manifest": {"tasks": [{"id": "a"}, {"id": "a"}]}})
        assert response.status_code == 422 and "declared twice" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("task", "fragment"),
    [
        ({"id": "m", "queue": "emails"}, "queue"),
        ({"id": "m", "retry": {"max_attempts": "3"}}, "retry.max_attempts"),
        ({"id": "m", "retry": {"max_attempts": 10**6}}, "retry.max_attempts"),
        ({"id": "m", "ttl": "1h"}, "ttl"),
        ({"id": "m", "payload_schema": {"type": 12}}, "payload_schema"),
        ({"id": "m", "queue": {"name": "q", "rate_limit": {"limit": 0, "period": 60}}}, "queue.rate_limit.limit"),
        ({"id": "m", "queue": {"name": "q", "rate_limit": {"limit": 1, "period": 1e300}}}, "queue.rate_limit.period"),
        ({"id": "m", "queue": {"name": "q", "rate_limit": {"limit": 1, "period": 1, "per": "x"}}}, "rate_limit.per"),
        ({"id": "m", "machine": "huge"}, "machine: unknown machine 'huge'"),
        ({"id": "m", "retry": {"out_of_memory": {"machine": "huge"}}}, "retry.out_of_memory.machine"),
        ({"id": "m", "retry": {"out_of_memory": "large-1x"}}, "retry.out_of_memory"),
        ("m", "expected an object"),
    ],
)
def test_registration_checks_every_task_declaration(stack: Stack, task: object, fragment: str) -> None:
    with stack.hand_driven() as http:
        response = http.post("/api/v1/worker/register", json={"manifest": {"tasks": [task]}})
        assert response.status_code == 422, response.text
        assert fragment in response.json()["error"]["message"]


def test_claim_size_is_bounded(stack: Stack) -> None:
    with stack.hand_driven() as http:
        version = _register(http, f"manual-{uuid.uuid4().hex[:8]}")
        body = {"worker_id": "w", "version_id": version, "max_runs": 101, "wait": 0}
        assert http.post("/api/v1/worker/claim", json=body).status_code == 422
