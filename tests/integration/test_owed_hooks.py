"""The final hooks owed to CRASHED and TIMED_OUT runs, at the HTTP level with a hand-driven worker:
owed at once to any worker when the run's worker is gone (its lease lapsed), held for a minute by
the worker that reported the crash itself, taken by one worker at a time, and forgotten once done."""

from __future__ import annotations

import uuid

import httpx

from tests.integration.conftest import Stack
from tests.support import assert_eventually

ONE_TRY = {"max_attempts": 1}


def _register(http: httpx.Client, task_id: str) -> str:
    manifest = {"tasks": [{"id": task_id, "retry": ONE_TRY}]}
    return http.post("/api/v1/worker/register", json={"manifest": manifest}).json()["version_id"]


def _claim(http: httpx.Client, version: str, worker: str) -> dict:
    body = {"worker_id": worker, "version_id": version, "max_runs": 1, "wait": 5}
    [execution] = http.post("/api/v1/worker/claim", json=body).json()["runs"]
    return execution


def _fail(http: httpx.Client, execution: dict, name: str, kind: str) -> str:
    """Report the claimed attempt ``execution`` failed (its task raised, or its runner crashed);
    the run's status."""
    error = {"name": name, "message": f"{name} in attempt 1", "kind": kind}
    result = {
        "run_id": execution["run_id"],
        "attempt": 1,
        "ok": False,
        "error": error,
        "execution": execution["execution"],
    }
    [reply] = http.post("/api/v1/worker/complete", json={"worker_id": "wkr_here", "results": [result]}).json()[
        "results"
    ]
    return str(reply["status"])


def _done(http: httpx.Client, run_id: str) -> list[str]:
    answer = http.post("/api/v1/worker/hooks/done", json={"worker_id": "wkr_here", "run_ids": [run_id]})
    return list(answer.json()["done"])


def _owed(http: httpx.Client, version: str, worker: str) -> list[dict]:
    answer = http.post("/api/v1/worker/hooks", json={"worker_id": worker, "version_id": version, "max_runs": 10})
    assert answer.status_code == 200, answer.text
    return answer.json()["hooks"]


def test_a_lost_run_owes_its_hooks_to_one_worker_until_they_ran(stack: Stack) -> None:
    task_id = f"lost-{uuid.uuid4().hex[:8]}"
    with stack.hand_driven() as http:
        version = _register(http, task_id)
        run_id = http.post(f"/api/v1/tasks/{task_id}/trigger", json={"payload": {"n": 1}}).json()["id"]
        _claim(http, version, "wkr_gone")  # ... and the worker dies: no heartbeat, no result

        def crashed() -> dict:
            run = http.get(f"/api/v1/runs/{run_id}").json()
            assert run["status"] == "CRASHED", run["status"]
            return run

        run = assert_eventually(crashed, timeout=15, what="the lease to lapse")
        [owed] = assert_eventually(lambda: _owed(http, version, "wkr_left"), what="the hooks owed")
        assert owed["execution"]["run_id"] == run_id and owed["execution"]["task_id"] == task_id
        assert owed["execution"]["payload"] == {"n": 1} and owed["error"]["name"] == "WorkerLost"
        assert owed["error"] == run["error"]
        assert _owed(http, version, "wkr_other") == []  # leased to the first worker that asked
        assert _done(http, run_id) == [run_id]
        assert _done(http, run_id) == []


def test_a_crash_the_worker_reports_is_its_own_to_run_first(stack: Stack) -> None:
    task_id = f"crash-{uuid.uuid4().hex[:8]}"
    with stack.hand_driven() as http:
        version = _register(http, task_id)
        http.post(f"/api/v1/tasks/{task_id}/trigger", json={"payload": {}})
        execution = _claim(http, version, "wkr_here")
        assert _fail(http, execution, "RunnerCrashed", "crash") == "CRASHED"
        # The reporting worker runs them now; no other worker gets them meanwhile.
        assert _owed(http, version, "wkr_other") == []
        assert _done(http, execution["run_id"]) == [execution["run_id"]]


def test_a_failure_the_task_raised_owes_nothing(stack: Stack) -> None:
    task_id = f"raises-{uuid.uuid4().hex[:8]}"
    with stack.hand_driven() as http:
        version = _register(http, task_id)
        http.post(f"/api/v1/tasks/{task_id}/trigger", json={"payload": {}})
        execution = _claim(http, version, "wkr_here")
        assert _fail(http, execution, "ValueError", "error") == "FAILED"
        assert _done(http, execution["run_id"]) == []  # its hooks ran in its runner, with the result
