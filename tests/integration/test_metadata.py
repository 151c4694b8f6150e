"""Run metadata and tags through a real server and worker, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
import pytest

from hightide import Client, NotFoundError, RunStatus
from tests.integration.conftest import Stack
from tests.support import assert_eventually, wait_finished


def test_a_run_that_sets_metadata_completes_with_it(client: Client) -> None:
    run = wait_finished(client, client.trigger("meta-progress", {"steps": 3}).id)
    assert run.status == RunStatus.COMPLETED, run.error
    expected = {"status": "finished", "total": 3, "done": 3}
    assert run.output == expected, "get/current read the run's own changes at once"
    assert run.metadata == expected, "flushed before the completion was reported"


def test_changes_are_sent_every_second_without_a_flush(client: Client) -> None:
    handle = client.trigger("meta-progress", {"steps": 4, "pause": 1.5})

    def progressing() -> bool:
        run = client.runs.retrieve(handle.id)
        assert run.status == RunStatus.EXECUTING and run.metadata.get("done", 0) >= 1, (run.status, run.metadata)
        return True

    assert_eventually(progressing, timeout=15, interval=0.1, what="progress to show while the run executes")
    assert wait_finished(client, handle.id).metadata["done"] == 4


def test_metadata_is_sent_while_the_run_executes(client: Client) -> None:
    handle = client.trigger("meta-live", {"seconds": 20})

    def working() -> bool:
        run = client.runs.retrieve(handle.id)
        assert run.status == RunStatus.EXECUTING and run.metadata.get("phase") == "working", run.metadata
        return True

    assert_eventually(working, timeout=15, what="the phase to be sent before the run ends")
    # From outside: the run's next flush brings the new document back to it.
    assert client.runs.update_metadata(handle.id, {"phase": "working", "stop": True})["stop"] is True
    run = wait_finished(client, handle.id)
    assert run.output == "stopped", run.error


def test_a_fan_out_counts_every_child_on_the_parent(client: Client) -> None:
    run = wait_finished(client, client.trigger("meta-fan-out", {"count": 20}).id, timeout=60)
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.metadata["done"] == 20 and run.metadata["leaves"] == 20
    assert sorted(run.metadata["children"]) == list(range(20))
    assert run.output["seen"]["done"] == 20, "the resumed parent starts from the children's changes"
    assert run.metadata["total"] == 20


def test_root_operations_reach_the_top_of_the_tree(client: Client) -> None:
    top = wait_finished(client, client.trigger("meta-grandparent", {"count": 4}).id, timeout=60)
    assert top.status == RunStatus.COMPLETED, top.error
    assert top.metadata == {"leaves": 4}
    [middle] = [r for r in client.runs.list(task="meta-fan-out", limit=50) if r.parent_run_id == top.id]
    assert middle.metadata["done"] == 4 and "leaves" not in middle.metadata


def test_a_failed_run_keeps_the_metadata_it_set(client: Client) -> None:
    run = wait_finished(client, client.trigger("meta-then-fail", {}).id)
    assert run.status == RunStatus.FAILED
    assert run.metadata == {"reached": "the failure"}


def test_a_runner_that_dies_keeps_what_it_flushed(client: Client) -> None:
    run = wait_finished(client, client.trigger("meta-crash", {}).id, timeout=40)
    assert run.status == RunStatus.CRASHED, (run.status, run.error)
    assert run.metadata == {"before_crash": True}


def test_a_plain_def_task_changes_metadata_from_its_thread(client: Client) -> None:
    run = wait_finished(client, client.trigger("meta-sync", {}).id)
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.output == run.metadata == {"from": "a thread", "n": 2}


def test_a_suspended_run_flushes_before_suspending_and_replays_without_counting_twice(client: Client) -> None:
    handle = client.trigger("meta-across-a-wait", {})

    def suspended() -> bool:
        run = client.runs.retrieve(handle.id)
        assert run.status == RunStatus.WAITING and run.metadata == {"before": 1}, (run.status, run.metadata)
        return True

    assert_eventually(suspended, timeout=20, what="the run to suspend with its metadata sent")
    run = wait_finished(client, handle.id)
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.metadata == run.output == {"before": 1, "after": 1}


def test_tags_add_up_to_ten_and_past_that_is_a_clear_error(client: Client) -> None:
    handle = client.trigger("tagger", {"tags": ["a", "b"], "extra": 9}, tags=["given"])
    run = wait_finished(client, handle.id)
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.output["added"] == ["given", "a", "b"]
    assert "over the limit of 10 tags per run" in run.output["refused"]
    assert run.tags == ["given", "a", "b"]
    assert [r.id for r in client.runs.list(tag="b", limit=5)] == [handle.id]


def test_an_over_limit_parent_change_is_refused_without_failing_the_run(client: Client) -> None:
    run = wait_finished(client, client.trigger("meta-too-big-parent", {}).id, timeout=40)
    assert run.status == RunStatus.COMPLETED, run.error
    assert "over the limit of 262,144 bytes (256 KB)" in run.output["child"]
    assert run.metadata == {}


def test_update_metadata_from_outside_replaces_it(client: Client) -> None:
    handle = client.trigger("sleepy", {"seconds": 0}, metadata={"a": 1})
    assert client.runs.update_metadata(handle.id, {"b": [1, 2]}) == {"b": [1, 2]}
    assert client.runs.retrieve(handle.id).metadata == {"b": [1, 2]}
    with pytest.raises(NotFoundError):
        client.runs.update_metadata("run_doesnotexist", {})


def test_the_http_api_takes_operations_with_one_error_shape(stack: Stack, http: httpx.Client) -> None:
    run_id = http.post("/api/v1/tasks/sleepy/trigger", json={"payload": {"seconds": 0}}).json()["id"]
    ops = [{"type": "increment", "key": "n", "value": 2}, {"type": "append", "key": "l", "value": "x"}]
    answer = http.post(f"/api/v1/runs/{run_id}/metadata", json={"operations": ops, "root_operations": ops})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"metadata": {"n": 4, "l": ["x", "x"]}}, "no parent: the run is its own root"

    too_big = http.put(f"/api/v1/runs/{run_id}/metadata", json={"metadata": {"x": "y" * 300_000}})
    assert too_big.status_code == 422
    error = too_big.json()["error"]
    assert error["code"] == "validation_error" and error["details"]["limit"] == 262144
    assert "256 KB" in error["message"]

    bad = http.post(f"/api/v1/runs/{run_id}/metadata", json={"operations": [{"type": "increment", "key": "n"}]})
    assert bad.status_code == 422 and "increment takes a finite number" in bad.json()["error"]["message"]
    unknown = http.post(f"/api/v1/runs/{run_id}/metadata", json={"operations": [{"type": "merge", "key": "n"}]})
    assert unknown.status_code == 422 and unknown.json()["error"]["details"]["field"] == "operations.0.type"
    tags = http.post(f"/api/v1/runs/{run_id}/tags", json={"tags": [f"t{i}" for i in range(11)]})
    assert tags.status_code == 422

    with stack.http(stack.new_key("staging")) as other:
        assert other.post(f"/api/v1/runs/{run_id}/metadata", json={"operations": ops}).status_code == 404
        assert other.put(f"/api/v1/runs/{run_id}/metadata", json={"metadata": {}}).status_code == 404
        assert other.post(f"/api/v1/runs/{run_id}/tags", json={"tags": ["x"]}).status_code == 404
    assert (
        http.post(f"/api/v1/runs/{run_id}/tags", json={"tags": ["x"]}, headers={"Authorization": ""}).status_code == 401
    )
    assert http.get(f"/api/v1/runs/{run_id}").json()["metadata"] == {"n": 4, "l": ["x", "x"]}


def test_openapi_documents_the_metadata_and_tag_routes(http: httpx.Client) -> None:
    paths = http.get("/api/openapi.json").json()["paths"]
    assert {"post", "put"} <= set(paths["/api/v1/runs/{run_id}/metadata"])
    assert "post" in paths["/api/v1/runs/{run_id}/tags"]
    for method in ("post", "put"):
        responses = paths["/api/v1/runs/{run_id}/metadata"][method]["responses"]
        assert {"404", "409", "422"} <= set(responses)
        assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")


def test_a_finished_runs_metadata_stays_changeable_for_an_hour(client: Client) -> None:
    run = wait_finished(client, client.trigger("meta-progress", {"steps": 1}).id)
    # (Past the hour it is a 409: tested in the store suite, which sets the clock.)
    assert client.runs.update_metadata(run.id, {"reviewed": True}) == {"reviewed": True}
    assert client.runs.retrieve(run.id).metadata == {"reviewed": True}
