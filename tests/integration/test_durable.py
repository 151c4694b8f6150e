"""Durable execution against a real server and worker: subtasks, timers, tokens, steps, replay."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from hightide import Client, ConflictError, RunStatus
from tests.support import assert_eventually, wait_finished


def _statuses(client: Client, run_id: str) -> list[str]:
    return [a.status for a in client.runs.retrieve(run_id).attempts]


def test_a_parent_waits_for_its_child_then_a_timer_and_continues(client: Client) -> None:
    handle = client.trigger("parent-waits", {"n": 21, "sleep": 2})
    assert_eventually(
        lambda: client.runs.retrieve(handle.id).status == RunStatus.WAITING, timeout=20, what="the parent to suspend"
    )
    run = wait_finished(client, handle.id)
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.output["child"] == 42
    assert run.attempt_count == 1  # suspensions continue the same attempt
    child = client.runs.retrieve(run.output["child_run"])
    assert child.parent_run_id == handle.id and child.output == 42
    # The log reads as one execution: nothing is repeated by the replays.
    messages = [r.message for r in client.runs.logs(handle.id)]
    assert messages == ["before child", "after child", "after wait"]


def test_gather_of_three_trigger_and_waits_suspends_once_for_all(client: Client) -> None:
    run = wait_finished(client, client.trigger("gather-three", {}).id)
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.output == [2, 4, 6]
    children = list(client.runs.list(task="double", limit=200))
    assert len([c for c in children if c.payload in ({"n": 1}, {"n": 2}, {"n": 3})]) >= 3


def test_batch_trigger_and_wait_returns_results_in_input_order(client: Client) -> None:
    run = wait_finished(client, client.trigger("fan-out", {"count": 25}).id)
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.output == [2 * n for n in range(25)]


def test_unwrap_raises_subtask_unwrap_error_with_the_child_run_and_error(client: Client) -> None:
    run = wait_finished(client, client.trigger("unwrap-failure", {}).id)
    assert run.status == RunStatus.COMPLETED, run.error
    child = client.runs.retrieve(run.output["run_id"])
    assert child.status == RunStatus.FAILED and child.task_id == "double"
    assert run.output["error"] == "cannot double 1"


def test_a_step_runs_once_across_a_resume_and_a_retry(client: Client, tmp_path: Path) -> None:
    path = tmp_path / "calls.txt"
    run = wait_finished(client, client.trigger("step-once", {"path": str(path)}).id, timeout=40)
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.attempt_count == 2 and run.output["attempt"] == 2
    assert path.read_text().splitlines() == ["x"]  # executed once
    assert run.output["calls_seen_by_step"] == 1  # and its recorded value returned on replay


def test_a_replay_that_takes_another_path_fails_with_a_non_determinism_error(client: Client, tmp_path: Path) -> None:
    run = wait_finished(client, client.trigger("changes-its-mind", {"path": str(tmp_path / "marker")}).id)
    assert run.status == RunStatus.FAILED
    assert run.error["name"] == "NonDeterminismError"
    assert "trigger_and_wait 'double'" in run.error["message"] and "wait 'duration'" in run.error["message"]
    assert run.attempt_count == 1  # not retried: it would fail the same way


def test_a_parent_and_child_on_one_queue_with_limit_one_do_not_deadlock(client: Client) -> None:
    run = wait_finished(client, client.trigger("serial-parent", {}).id)
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.output == "child done"


def _token_of(client: Client, tag: str) -> str:
    def found() -> str:
        tokens = list(client.waitpoints.list_tokens(tag=tag))
        assert len(tokens) == 1
        return tokens[0].id

    return assert_eventually(found, timeout=20, what=f"the token tagged {tag}")


def test_a_token_completed_from_the_sdk_resumes_its_run_with_the_data(client: Client) -> None:
    tag = f"t-{uuid.uuid4().hex[:8]}"
    handle = client.trigger("token-waiter", {"tag": tag})
    token_id = _token_of(client, tag)
    assert_eventually(lambda: client.runs.retrieve(handle.id).status == RunStatus.WAITING, timeout=20)
    token = client.waitpoints.complete_token(token_id, {"approved": True})
    assert token.status == "COMPLETED"
    run = wait_finished(client, handle.id)
    assert run.output == {"ok": True, "output": {"approved": True}, "error": None}
    with pytest.raises(ConflictError, match="already completed"):
        client.waitpoints.complete_token(token_id, {"again": True})


def test_a_token_url_completes_it_with_plain_http_and_no_key(client: Client, stack) -> None:
    tag = f"t-{uuid.uuid4().hex[:8]}"
    handle = client.trigger("token-waiter", {"tag": tag})
    token = client.waitpoints.retrieve_token(_token_of(client, tag))
    assert token.url.startswith(stack.url) and token.id in token.url
    forged = token.url[:-4] + "0000"
    assert httpx.post(forged, json={"x": 1}).status_code == 401
    response = httpx.post(token.url, json={"via": "webhook"})  # no Authorization header
    assert response.status_code == 200, response.text
    run = wait_finished(client, handle.id)
    assert run.output["output"] == {"via": "webhook"}


def test_a_token_that_times_out_resumes_its_run_with_ok_false(client: Client) -> None:
    tag = f"t-{uuid.uuid4().hex[:8]}"
    run = wait_finished(client, client.trigger("token-waiter", {"tag": tag, "timeout": "2s"}).id)
    assert run.output == {"ok": False, "output": None, "error": "WaitpointTimeoutError"}
    token = client.waitpoints.retrieve_token(_token_of(client, tag))
    assert token.status == "TIMED_OUT"
    with pytest.raises(ConflictError, match="timed out"):
        client.waitpoints.complete_token(token.id, {})


def test_cancelling_a_waiting_run_cancels_it_and_completing_its_token_is_a_clean_409(client: Client) -> None:
    tag = f"t-{uuid.uuid4().hex[:8]}"
    handle = client.trigger("token-waiter", {"tag": tag})
    token_id = _token_of(client, tag)
    assert_eventually(lambda: client.runs.retrieve(handle.id).status == RunStatus.WAITING, timeout=20)
    run = client.runs.cancel(handle.id)
    assert run.status == RunStatus.CANCELED
    assert _statuses(client, handle.id) == ["CANCELED"]
    with pytest.raises(ConflictError, match="cancelled with its run"):
        client.waitpoints.complete_token(token_id, {"late": True})
    assert client.runs.retrieve(handle.id).status == RunStatus.CANCELED


def test_cancelling_a_parent_waiting_on_a_child_cancels_the_child(client: Client) -> None:
    tag = f"t-{uuid.uuid4().hex[:8]}"
    parent = client.trigger("parent-of-waiter", {"tag": tag})
    _token_of(client, tag)  # the child is waiting on its token; the parent on the child
    assert_eventually(lambda: client.runs.retrieve(parent.id).status == RunStatus.WAITING, timeout=20)
    client.runs.cancel(parent.id)
    [child] = list(client.runs.list(task="token-waiter", tag=tag))
    assert child.status == RunStatus.CANCELED


def test_a_global_idempotency_key_gives_a_second_parent_the_first_child_and_its_result(client: Client) -> None:
    key = f"order-{uuid.uuid4().hex[:8]}"
    first = wait_finished(client, client.trigger("keyed-parent", {"key": key, "scope": "global", "n": 4}).id)
    second = wait_finished(client, client.trigger("keyed-parent", {"key": key, "scope": "global", "n": 5}).id)
    assert first.output == {"child": first.output["child"], "output": 8}
    assert second.output == first.output  # the cached child, with its recorded result
    run_scoped = wait_finished(client, client.trigger("keyed-parent", {"key": key, "scope": "run", "n": 5}).id)
    assert run_scoped.output["child"] != first.output["child"] and run_scoped.output["output"] == 10


def test_reset_forgets_an_idempotency_key(client: Client) -> None:
    key = f"reset-{uuid.uuid4().hex[:8]}"
    first = client.trigger("echo", {}, idempotency_key=key)
    assert client.trigger("echo", {}, idempotency_key=key).id == first.id
    assert client.reset_idempotency_key("echo", key) is True
    again = client.trigger("echo", {}, idempotency_key=key)
    assert again.id != first.id and not again.is_cached
    assert client.reset_idempotency_key("echo", "never-used") is False


def test_a_wait_with_an_idempotency_key_reuses_the_first_timer(client: Client) -> None:
    key = f"timer-{uuid.uuid4().hex[:8]}"
    first = client.trigger("keyed-timer", {"key": key, "seconds": 3})
    assert_eventually(lambda: client.runs.retrieve(first.id).status == RunStatus.WAITING, timeout=20)
    second = client.trigger("keyed-timer", {"key": key, "seconds": 600})  # same key: the first timer
    assert wait_finished(client, first.id).output == "resumed"
    assert wait_finished(client, second.id, timeout=30).output == "resumed"


def test_a_retried_parent_triggers_its_failed_child_again(client: Client, tmp_path: Path) -> None:
    handle = client.trigger("retries-its-child", {"path": str(tmp_path / "marker")})
    run = wait_finished(client, handle.id)
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.output == "child ok" and run.attempt_count == 2
    assert "SubtaskUnwrapError" in run.attempts[0].error["name"]
    children = [c for c in client.runs.list(task="fails-once", limit=50) if c.parent_run_id == handle.id]
    assert sorted(c.status for c in children) == [RunStatus.COMPLETED, RunStatus.FAILED]


def test_gather_branches_with_several_durable_calls_each_replay_deterministically(client: Client) -> None:
    run = wait_finished(client, client.trigger("gather-branches", {}).id)
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.output == [1, 3, 5, 7]
