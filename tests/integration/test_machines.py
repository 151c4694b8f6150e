"""Machine presets at the HTTP level, with a hand-driven worker: which preset each attempt runs on,
and how an out-of-memory failure retries (only on the machine the task's retry names, once)."""

from __future__ import annotations

import uuid

import httpx

from tests.integration.conftest import Stack

QUICK = {"min_timeout": 0, "max_timeout": 0}


def _register(http: httpx.Client, task: dict) -> str:
    response = http.post("/api/v1/worker/register", json={"manifest": {"tasks": [task]}})
    assert response.status_code == 200, response.text
    return response.json()["version_id"]


def _claim_one(http: httpx.Client, version: str) -> dict:
    body = {"worker_id": "wkr_m", "version_id": version, "max_runs": 1, "wait": 5}
    [execution] = http.post("/api/v1/worker/claim", json=body).json()["runs"]
    return execution


def _out_of_memory(http: httpx.Client, execution: dict) -> dict:
    error = {"name": "OutOfMemoryError", "message": "the run used 300 MB", "kind": "out_of_memory"}
    result = {"run_id": execution["run_id"], "attempt": execution["attempt"], "ok": False, "error": error}
    body = {"worker_id": "wkr_m", "results": [{**result, "execution": execution["execution"]}]}
    [reply] = http.post("/api/v1/worker/complete", json=body).json()["results"]
    assert reply["accepted"], reply
    return http.get(f"/api/v1/runs/{execution['run_id']}").json()


def test_an_out_of_memory_failure_moves_the_run_to_the_bigger_machine_once(stack: Stack) -> None:
    task_id = f"hungry-{uuid.uuid4().hex[:8]}"
    retry = {"max_attempts": 3, **QUICK, "out_of_memory": {"machine": "small-2x"}}
    with stack.hand_driven() as http:
        version = _register(http, {"id": task_id, "machine": "micro", "retry": retry})
        run = http.post(f"/api/v1/tasks/{task_id}/trigger", json={"payload": {}}).json()
        assert http.get(f"/api/v1/runs/{run['id']}").json()["machine"] == "micro"

        first = _claim_one(http, version)
        assert (first["machine"], first["retry_machine"]) == ("micro", "small-2x")
        after_first = _out_of_memory(http, first)
        assert after_first["status"] == "QUEUED" and after_first["machine"] == "small-2x"
        assert after_first["attempts"][0]["error"]["name"] == "OutOfMemoryError"

        # On the bigger machine, out of memory again: nowhere bigger to go, so it is final (CRASHED),
        # with attempts left.
        second = _claim_one(http, version)
        assert (second["attempt"], second["machine"], second["retry_machine"]) == (2, "small-2x", None)
        final = _out_of_memory(http, second)
        assert final["status"] == "CRASHED" and final["attempt_count"] == 2 and final["max_attempts"] == 3


def test_without_a_retry_machine_out_of_memory_is_final(stack: Stack) -> None:
    task_id = f"hungry-{uuid.uuid4().hex[:8]}"
    with stack.hand_driven() as http:
        version = _register(http, {"id": task_id, "machine": "micro", "retry": {"max_attempts": 3, **QUICK}})
        http.post(f"/api/v1/tasks/{task_id}/trigger", json={"payload": {}})
        execution = _claim_one(http, version)
        assert execution["retry_machine"] is None
        run = _out_of_memory(http, execution)
        assert run["status"] == "CRASHED" and run["attempt_count"] == 1 and run["machine"] == "micro"


def test_a_trigger_picks_the_machine_else_the_task_does(stack: Stack) -> None:
    task_id = f"sized-{uuid.uuid4().hex[:8]}"
    plain_id = f"plain-{uuid.uuid4().hex[:8]}"
    with stack.hand_driven() as http:
        manifest = {"tasks": [{"id": task_id, "machine": "medium-1x"}, {"id": plain_id}]}
        assert http.post("/api/v1/worker/register", json={"manifest": manifest}).status_code == 200

        def machine(task: str, options: dict) -> str:
            response = http.post(f"/api/v1/tasks/{task}/trigger", json={"payload": {}, "options": options})
            assert response.status_code == 200, response.text
            return http.get(f"/api/v1/runs/{response.json()['id']}").json()["machine"]

        assert machine(task_id, {}) == "medium-1x"
        assert machine(task_id, {"machine": "large-2x"}) == "large-2x"
        assert machine(plain_id, {}) == "small-1x"
        refused = http.post(f"/api/v1/tasks/{task_id}/trigger", json={"payload": {}, "options": {"machine": "xl"}})
        assert refused.status_code == 422 and "micro" in refused.json()["error"]["message"]
