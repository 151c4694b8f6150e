"""Releases and claim ids at the HTTP level, with a hand-driven 'worker': a run given back is queued
at once with no attempt used; a claim tried again gets the same runs; a claim let go is released."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from hightide.types import MAX_HEARTBEAT_RUNS
from tests.integration.conftest import Stack


def _register(http: httpx.Client, task_id: str) -> str:
    response = http.post("/api/v1/worker/register", json={"manifest": {"tasks": [{"id": task_id}]}})
    assert response.status_code == 200, response.text
    return response.json()["version_id"]


def _trigger(http: httpx.Client, task_id: str, n: int = 1) -> list[str]:
    return [http.post(f"/api/v1/tasks/{task_id}/trigger", json={"payload": {"n": i}}).json()["id"] for i in range(n)]


def _claim(http: httpx.Client, version: str, worker: str, claim_id: str, max_runs: int = 10) -> list[dict[str, Any]]:
    body = {"worker_id": worker, "version_id": version, "max_runs": max_runs, "wait": 0, "claim_id": claim_id}
    response = http.post("/api/v1/worker/claim", json=body)
    assert response.status_code == 200, response.text
    return response.json()["runs"]


def _release(
    http: httpx.Client, worker: str, runs: list[dict[str, Any]] | None = None, claims: list[str] | None = None
) -> list[str]:
    body = {"worker_id": worker, "runs": [_held(e) for e in runs or []], "claims": claims or []}
    response = http.post("/api/v1/worker/release", json=body)
    assert response.status_code == 200, response.text
    return response.json()["released"]


def test_a_released_run_is_queued_at_once_and_completes_on_its_first_attempt(stack: Stack) -> None:
    task_id = f"manual-{uuid.uuid4().hex[:8]}"
    with stack.hand_driven() as http:
        version = _register(http, task_id)
        [run_id] = _trigger(http, task_id)
        [execution] = _claim(http, version, "wkr_a", uuid.uuid4().hex)

        assert _release(http, "wkr_a", [execution]) == [run_id]
        run = http.get(f"/api/v1/runs/{run_id}").json()
        assert (run["status"], run["attempt_count"]) == ("QUEUED", 1)
        assert [a["status"] for a in run["attempts"]] == ["RELEASED"]
        assert _release(http, "wkr_a", [execution]) == []  # again: a clean no-op

        # Another worker takes it at once (no lease to wait for) and continues attempt 1.
        [again] = _claim(http, version, "wkr_b", uuid.uuid4().hex)
        assert (again["run_id"], again["attempt"]) == (run_id, 1)
        assert again["execution"] == execution["execution"] + 1
        done = {"worker_id": "wkr_b", "results": [{**_held(again), "ok": True, "output": "done"}]}
        assert http.post("/api/v1/worker/complete", json=done).json()["results"][0]["status"] == "COMPLETED"
        run = http.get(f"/api/v1/runs/{run_id}").json()
        assert (run["status"], run["attempt_count"], run["output"]) == ("COMPLETED", 1, "done")
        assert [(a["number"], a["status"], a["worker_id"]) for a in run["attempts"]] == [(1, "COMPLETED", "wkr_b")]

        spans = http.get(f"/api/v1/runs/{run_id}/trace").json()["spans"]
        [released] = [s for s in spans if s["kind"] == "release"]
        [attempt] = [s for s in spans if s["kind"] == "attempt"]
        assert released["parent_span_id"] == attempt["span_id"] and released["status"] != "ERROR"
        assert released["attributes"]["hightide.worker.id"] == "wkr_a"


def _held(execution: dict[str, Any]) -> dict[str, Any]:
    return {"run_id": execution["run_id"], "attempt": execution["attempt"], "execution": execution["execution"]}


@pytest.mark.parametrize("ok", [True, False])
def test_a_late_report_from_the_releasing_worker_is_refused_once_another_took_the_run(stack: Stack, ok: bool) -> None:
    """After a release, (run, attempt) names another worker's execution: a report of the worker
    that gave the run back, even one without `execution`, must not finish it."""
    task_id = f"manual-{uuid.uuid4().hex[:8]}"
    with stack.hand_driven() as http:
        version = _register(http, task_id)
        [run_id] = _trigger(http, task_id)
        [first] = _claim(http, version, "wkr_late", uuid.uuid4().hex)
        assert _release(http, "wkr_late", [first]) == [run_id]
        [second] = _claim(http, version, "wkr_next", uuid.uuid4().hex)
        assert second["attempt"] == first["attempt"]

        outcome = {"ok": ok, "output": "late"} if ok else {"ok": False, "error": {"name": "Boom", "message": "late"}}
        late = {"run_id": run_id, "attempt": first["attempt"], **outcome}  # no `execution`
        reply = http.post("/api/v1/worker/complete", json={"worker_id": "wkr_late", "results": [late]}).json()
        assert reply["results"][0]["accepted"] is False
        assert http.get(f"/api/v1/runs/{run_id}").json()["status"] == "EXECUTING"

        done = {"worker_id": "wkr_next", "results": [{**_held(second), "ok": True, "output": "done"}]}
        assert http.post("/api/v1/worker/complete", json=done).json()["results"][0]["accepted"] is True
        run = http.get(f"/api/v1/runs/{run_id}").json()
        assert (run["status"], run["output"]) == ("COMPLETED", "done")
        assert [(a["status"], a["worker_id"]) for a in run["attempts"]] == [("COMPLETED", "wkr_next")]


def test_cancelling_a_released_run_closes_the_attempt_it_left_open(stack: Stack) -> None:
    task_id = f"manual-{uuid.uuid4().hex[:8]}"
    with stack.hand_driven() as http:
        version = _register(http, task_id)
        [run_id] = _trigger(http, task_id)
        [execution] = _claim(http, version, "wkr_gone", uuid.uuid4().hex)
        assert _release(http, "wkr_gone", [execution]) == [run_id]

        assert http.post(f"/api/v1/runs/{run_id}/cancel").status_code == 200
        run = http.get(f"/api/v1/runs/{run_id}").json()
        assert run["status"] == "CANCELED"
        assert [(a["status"], a["finished_at"] is not None) for a in run["attempts"]] == [("CANCELED", True)]


def test_a_run_given_back_unstarted_is_as_if_never_claimed(stack: Stack) -> None:
    task_id = f"manual-{uuid.uuid4().hex[:8]}"
    with stack.hand_driven() as http:
        version = _register(http, task_id)
        [run_id] = _trigger(http, task_id)
        [execution] = _claim(http, version, "wkr_pre", uuid.uuid4().hex)
        body = {"worker_id": "wkr_pre", "runs": [{**_held(execution), "started": False}]}
        assert http.post("/api/v1/worker/release", json=body).json()["released"] == [run_id]

        run = http.get(f"/api/v1/runs/{run_id}").json()
        assert (run["status"], run["attempt_count"], run["attempts"]) == ("QUEUED", 0, [])


def test_a_release_after_a_cancel_changes_nothing(stack: Stack) -> None:
    task_id = f"manual-{uuid.uuid4().hex[:8]}"
    with stack.hand_driven() as http:
        version = _register(http, task_id)
        [run_id] = _trigger(http, task_id)
        [execution] = _claim(http, version, "wkr_c", uuid.uuid4().hex)
        assert http.post(f"/api/v1/runs/{run_id}/cancel").status_code == 200

        assert _release(http, "wkr_c", [execution]) == []
        assert http.get(f"/api/v1/runs/{run_id}").json()["status"] == "CANCELED"


def test_a_claim_tried_again_gets_the_same_runs_and_a_claim_let_go_gives_them_back(stack: Stack) -> None:
    task_id = f"manual-{uuid.uuid4().hex[:8]}"
    with stack.hand_driven() as http:
        version = _register(http, task_id)
        ids = _trigger(http, task_id, 3)
        lost = uuid.uuid4().hex

        first = _claim(http, version, "wkr_d", lost, max_runs=2)  # its answer "never arrived"
        retried = _claim(http, version, "wkr_d", lost, max_runs=3)
        assert [e["run_id"] for e in retried] == [e["run_id"] for e in first] == ids[:2]
        assert [_held(e) for e in retried] == [_held(e) for e in first]  # claimed once, not twice

        # The worker lets the claim go (it stopped before taking the answer): its runs are back.
        assert sorted(_release(http, "wkr_d", claims=[lost])) == sorted(ids[:2])
        assert _claim(http, version, "wkr_d", lost) == []  # a late try of the claim takes nothing
        assert {http.get(f"/api/v1/runs/{i}").json()["status"] for i in ids} == {"QUEUED"}
        taken = _claim(http, version, "wkr_e", uuid.uuid4().hex)
        assert [(e["run_id"], e["attempt"]) for e in taken] == [(i, 1) for i in ids]


def test_a_claim_riding_on_a_report_is_tried_again_with_its_id(stack: Stack) -> None:
    task_id = f"manual-{uuid.uuid4().hex[:8]}"
    with stack.hand_driven() as http:
        version = _register(http, task_id)
        ids = _trigger(http, task_id, 2)
        claim = {"version_id": version, "max_runs": 1, "claim_id": uuid.uuid4().hex}
        body = {"worker_id": "wkr_f", "results": [], "claim": claim}

        first = http.post("/api/v1/worker/complete", json=body).json()["runs"]
        again = http.post("/api/v1/worker/complete", json=body).json()["runs"]

        assert [_held(e) for e in again] == [_held(e) for e in first] and first[0]["run_id"] == ids[0]
        assert http.get(f"/api/v1/runs/{ids[1]}").json()["status"] == "QUEUED"


@pytest.mark.parametrize(
    "body",
    [
        {"worker_id": "w", "claims": ["c"] * 101},
        {"worker_id": "w", "claims": ["x" * 65]},
        {"worker_id": "w", "claims": ["a\u0000b"]},
        {"worker_id": "w\u0000", "claims": []},
        {"worker_id": "w", "runs": [{"run_id": "run_1", "attempt": 2**40}]},
        {"worker_id": "w", "runs": [{"run_id": "run_1", "attempt": 1, "execution": -1}]},
    ],
)
def test_release_requests_are_validated(stack: Stack, body: dict[str, Any]) -> None:
    with stack.hand_driven() as http:
        response = http.post("/api/v1/worker/release", json=body)
        assert response.status_code == 422 and response.json()["error"]["code"], response.text


def test_a_heartbeat_naming_more_runs_than_a_worker_can_hold_is_refused(stack: Stack) -> None:
    runs = [{"run_id": f"run_{i}", "attempt": 1} for i in range(MAX_HEARTBEAT_RUNS + 1)]
    with stack.hand_driven() as http:
        response = http.post("/api/v1/worker/heartbeat", json={"worker_id": "w", "runs": runs, "extend": False})
        assert response.status_code == 422 and response.json()["error"]["code"] == "validation_error"
        ok = http.post("/api/v1/worker/heartbeat", json={"worker_id": "w", "runs": runs[:-1], "extend": False})
        assert ok.status_code == 200 and len(ok.json()["stop"]) == MAX_HEARTBEAT_RUNS


def test_claim_ids_are_validated(stack: Stack) -> None:
    with stack.hand_driven() as http:
        version = _register(http, f"manual-{uuid.uuid4().hex[:8]}")
        for claim_id in ("x" * 65, "", "a\u0000b"):
            body = {"worker_id": "w", "version_id": version, "max_runs": 1, "wait": 0, "claim_id": claim_id}
            assert http.post("/api/v1/worker/claim", json=body).status_code == 422
