"""Traces against a real server and worker: runs, attempts, steps, triggers and waits are spans;
child runs join their parent's trace; the replayed part of a run adds no spans."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from opentelemetry.sdk.trace import TracerProvider

from hightide import Client, RunStatus
from tests.integration.conftest import Stack
from tests.support import wait_finished


def _trace(stack: Stack, run_id: str) -> dict[str, Any]:
    with stack.http() as http:
        response = http.get(f"/api/v1/runs/{run_id}/trace")
    assert response.status_code == 200, response.text
    return response.json()


def _named(spans: list[dict[str, Any]], name: str) -> dict[str, Any]:
    matching = [s for s in spans if s["name"] == name]
    assert len(matching) == 1, (name, [s["name"] for s in spans])
    return matching[0]


def test_a_run_that_waits_twice_reads_as_one_trace(stack: Stack, client: Client) -> None:
    handle = client.trigger("traced-parent", {})
    run = wait_finished(client, handle.id)
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.output == {"total": 102}
    body = _trace(stack, handle.id)
    spans = body["spans"]
    assert {s["trace_id"] for s in spans} == {body["trace_id"]}

    parent = next(s for s in spans if s["kind"] == "run" and s["run_id"] == handle.id)
    child_run = next(s for s in spans if s["kind"] == "run" and s["run_id"] != handle.id)
    attempt = _named([s for s in spans if s["run_id"] == handle.id], "attempt 1")
    assert parent["parent_span_id"] is None and parent["status"] == "OK" and parent["end_time"]
    assert attempt["parent_span_id"] == parent["span_id"] and attempt["kind"] == "attempt"

    # The parent executed three times (start, after the child, after the timer): each of its
    # operations is in the trace once, under the attempt.
    own = [s for s in spans if s["run_id"] == handle.id and s["kind"] not in ("run", "attempt")]
    assert sorted(s["name"] for s in own) == sorted(
        ["prepare", "step charge", "trigger_and_wait traced-child", "wait.for_ 2s", "step finish"]
    )
    assert all(s["parent_span_id"] == attempt["span_id"] for s in own)
    assert all(s["end_time"] is not None and s["status"] != "ERROR" for s in own)
    prepare = _named(own, "prepare")
    assert prepare["attributes"] == {"order": 7, "prepared": True}
    assert _named(own, "step charge")["kind"] == "step"

    # The child run hangs under the parent's trigger span, which lasts until the child finished.
    trigger = _named(own, "trigger_and_wait traced-child")
    assert child_run["parent_span_id"] == trigger["span_id"]
    assert trigger["end_time"] >= child_run["end_time"]
    child_steps = [s for s in spans if s["run_id"] == child_run["run_id"] and s["kind"] == "step"]
    assert [s["name"] for s in child_steps] == ["step child-work"]

    # The timer suspended the run: its span was recorded open and ended when the timer fired.
    timer = _named(own, "wait.for_ 2s")
    assert timer["kind"] == "wait" and timer["duration_ms"] >= 1900

    # Logs name the span they were written in.
    span_of = {r.message: r.span_id for r in client.runs.logs(handle.id)}
    assert set(span_of) == {"inside prepare", "finished"}
    assert span_of["inside prepare"] == prepare["span_id"]
    assert span_of["finished"] == attempt["span_id"]

    # The child's trace is the same trace.
    assert _trace(stack, child_run["run_id"])["trace_id"] == body["trace_id"]
    assert client.runs.retrieve(child_run["run_id"]).trace_id == run.trace_id == body["trace_id"]


def test_a_failed_step_is_an_error_span_in_its_attempt(stack: Stack, client: Client, tmp_path: Path) -> None:
    handle = client.trigger("traced-retry", {"path": str(tmp_path / "marker")})
    run = wait_finished(client, handle.id)
    assert run.status == RunStatus.COMPLETED and run.attempt_count == 2
    spans = _trace(stack, handle.id)["spans"]
    first, second = _named(spans, "attempt 1"), _named(spans, "attempt 2")
    assert first["status"] == "ERROR" and second["status"] == "OK"
    assert first["events"][0]["attributes"]["exception.type"] == "RuntimeError"
    steps = [s for s in spans if s["kind"] == "step"]
    assert [(s["parent_span_id"], s["status"]) for s in steps] == [
        (first["span_id"], "ERROR"),
        (second["span_id"], "UNSET"),
    ]
    assert steps[0]["events"][0]["name"] == "exception"


def test_a_run_triggered_inside_an_app_span_joins_the_apps_trace(stack: Stack, client: Client) -> None:
    tracer = TracerProvider().get_tracer("the-app")
    with tracer.start_as_current_span("POST /orders") as app_span:
        handle = client.trigger("traced-child", {"n": 1})
    context = app_span.get_span_context()
    wait_finished(client, handle.id)
    body = _trace(stack, handle.id)
    assert body["trace_id"] == f"{context.trace_id:032x}"
    run = next(s for s in body["spans"] if s["kind"] == "run")
    assert run["parent_span_id"] == f"{context.span_id:016x}"


def test_a_malformed_traceparent_starts_a_new_trace(stack: Stack) -> None:
    with stack.http() as http:
        response = http.post(
            "/api/v1/tasks/traced-child/trigger", json={"payload": {"n": 1}}, headers={"traceparent": "not-a-trace"}
        )
        assert response.status_code == 200, response.text
        run_id = response.json()["id"]
        trace = http.get(f"/api/v1/runs/{run_id}/trace").json()
    run = next(s for s in trace["spans"] if s["kind"] == "run")
    assert len(trace["trace_id"]) == 32 and run["parent_span_id"] is None


def test_the_trace_of_an_unknown_run_is_a_404(stack: Stack) -> None:
    with stack.http() as http:
        response = http.get("/api/v1/runs/run_missing/trace")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_spans_of_another_environments_run_are_refused(stack: Stack, client: Client) -> None:
    handle = client.trigger("traced-child", {"n": 1})
    wait_finished(client, handle.id)
    other = stack.new_key("prod")
    span = {
        "run_id": handle.id,
        "attempt": 1,
        "trace_id": "a" * 32,
        "span_id": "b" * 16,
        "name": "forged",
        "start_time": 1.0,
        "end_time": 2.0,
    }
    with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {other}"}) as http:
        response = http.post("/api/v1/worker/complete", json={"worker_id": "w", "spans": [span]})
    assert response.status_code == 404


def test_a_span_cut_by_a_suspension_is_kept_and_the_replay_adds_none(stack: Stack, client: Client) -> None:
    handle = client.trigger("traced-phase", {})
    assert wait_finished(client, handle.id).status == RunStatus.COMPLETED
    spans = _trace(stack, handle.id)["spans"]
    attempt = _named(spans, "attempt 1")
    phase = _named(spans, "phase")  # once: the replayed "phase" of the second execution is not sent
    assert phase["attributes"] == {"hightide.suspended": True} and phase["status"] == "UNSET"
    assert _named(spans, "step before")["parent_span_id"] == phase["span_id"]
    assert _named(spans, "wait.for_ 2s")["parent_span_id"] == phase["span_id"]
    # Started inside the replayed "phase": it hangs under the nearest recorded span, the attempt.
    assert _named(spans, "step after")["parent_span_id"] == attempt["span_id"]


def test_spans_of_the_opentelemetry_api_in_a_task_join_the_run(stack: Stack, client: Client) -> None:
    handle = client.trigger("traced-otel", {})
    assert wait_finished(client, handle.id).status == RunStatus.COMPLETED
    spans = _trace(stack, handle.id)["spans"]
    query = _named(spans, "query")
    assert query["parent_span_id"] == _named(spans, "attempt 1")["span_id"]
    assert query["attributes"] == {"db.system": "sqlite"} and query["kind"] == "span"


def test_a_branch_running_for_real_is_traced_while_another_replays(
    stack: Stack, client: Client, tmp_path: Path
) -> None:
    handle = client.trigger("traced-branches", {"path": str(tmp_path / "marker")})
    run = wait_finished(client, handle.id)
    assert run.status == RunStatus.COMPLETED and run.output == ["charged", "sent"]
    spans = _trace(stack, handle.id)["spans"]
    first, second = _named(spans, "attempt 1"), _named(spans, "attempt 2")
    steps = sorted((s["name"], s["parent_span_id"], s["status"]) for s in spans if s["kind"] == "step")
    assert steps == sorted(
        [
            ("step charge", first["span_id"], "ERROR"),
            ("step email", first["span_id"], "UNSET"),
            ("step charge", second["span_id"], "UNSET"),  # the email step replayed: no span
        ]
    )


def test_a_retried_parent_waits_for_its_child_triggered_again_in_its_new_attempt(
    stack: Stack, client: Client, tmp_path: Path
) -> None:
    handle = client.trigger("retries-its-child", {"path": str(tmp_path / "marker")})
    run = wait_finished(client, handle.id)
    assert run.status == RunStatus.COMPLETED and run.attempt_count == 2
    spans = _trace(stack, handle.id)["spans"]
    attempts = {s["span_id"]: s for s in spans if s["run_id"] == handle.id and s["kind"] == "attempt"}
    waits = [s for s in spans if s["run_id"] == handle.id and s["kind"] == "wait"]
    assert sorted(attempts[w["parent_span_id"]]["name"] for w in waits) == ["attempt 1", "attempt 2"]
    for wait in waits:  # each ends with its attempt at the latest
        attempt = attempts[wait["parent_span_id"]]
        assert wait["end_time"] is not None and wait["end_time"] <= attempt["end_time"]
    children = [s for s in spans if s["kind"] == "run" and s["run_id"] != handle.id]
    assert len(children) == 2
    first_attempt = next(a for a in attempts.values() if a["name"] == "attempt 1")
    parents = {c["parent_span_id"] for c in children}
    assert next(w for w in waits if w["parent_span_id"] == first_attempt["span_id"])["span_id"] in parents
    assert next(a for a in attempts.values() if a["name"] == "attempt 2")["span_id"] in parents


def test_odd_names_and_values_are_bounded_not_fatal(stack: Stack, client: Client) -> None:
    handle = client.trigger("traced-odd", {})
    run = wait_finished(client, handle.id)
    assert run.status == RunStatus.COMPLETED, run.error
    [span] = [s for s in _trace(stack, handle.id)["spans"] if s["kind"] == "span"]
    assert span["name"] == "x" * 512
    assert span["attributes"] == {"ratio": "nan", "big": "y" * 4096}
    [record] = client.runs.logs(handle.id)
    assert record.attributes == {"ratio": "inf"} and record.span_id == span["span_id"]


def test_another_environment_cannot_read_a_trace_by_joining_it(stack: Stack, client: Client) -> None:
    handle = client.trigger("traced-parent", {})
    wait_finished(client, handle.id)
    trace_id = _trace(stack, handle.id)["trace_id"]
    other = stack.new_key("prod")
    with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {other}"}) as http:
        # prod has no worker: its run stays queued, but it claims to be in dev's trace.
        response = http.post(
            "/api/v1/tasks/traced-child/trigger",
            json={"payload": {"n": 1}},
            headers={"traceparent": f"00-{trace_id}-{'1' * 16}-01"},
        )
        if response.status_code == 404:  # no such task registered in prod: nothing to read anyway
            return
        seen = http.get(f"/api/v1/runs/{response.json()['id']}/trace").json()
    assert seen["trace_id"] == trace_id
    assert {s["run_id"] for s in seen["spans"]} == {response.json()["id"]}
