"""Runs through the API and the SDK with a real worker: outputs, retries, logs, control."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from hightide import Client, ConflictError, NotFoundError, RunStatus, ValidationError
from tests.support import assert_eventually, wait_finished


def _finished(client: Client, run_id: str, timeout: float = 30):
    return wait_finished(client, run_id, timeout)


def test_a_run_completes_with_its_output_and_context(client: Client) -> None:
    handle = client.trigger("echo", {"n": 1}, tags=["user:42"])
    run = _finished(client, handle.id)
    assert run.status == RunStatus.COMPLETED
    assert run.output["payload"] == {"n": 1}
    assert run.output["run"] == handle.id
    assert run.output["tags"] == ["user:42"]
    assert run.output["env"] == "dev" and run.output["queue"] == "task/echo"
    assert run.attempt_count == 1 and run.attempts[0].status == "COMPLETED"
    assert run.started_at and run.finished_at and run.finished_at >= run.started_at


def test_pydantic_payloads_are_validated_and_converted(client: Client) -> None:
    run = _finished(client, client.trigger("order", {"order_id": "o-7", "quantity": 3}).id)
    assert run.output == {"order_id": "o-7", "total": 6}
    with pytest.raises(ValidationError, match="quantity"):
        client.trigger("order", {"order_id": "o-8", "quantity": "many"})


def test_logs_print_and_logging_are_stored_with_the_run(client: Client) -> None:
    run = _finished(client, client.trigger("chatty", {}).id)
    assert run.status == RunStatus.COMPLETED
    logs = client.runs.logs(run.id)
    messages = [(r.level, r.message) for r in logs]
    assert ("info", "structured") in messages
    assert ("info", "printed line") in messages
    assert ("warn", "from logging") in messages
    assert next(r for r in logs if r.message == "structured").attributes == {"step": 1}


def test_abort_fails_without_retrying(client: Client) -> None:
    run = _finished(client, client.trigger("abort", {}).id)
    assert run.status == RunStatus.FAILED
    assert run.attempt_count == 1
    assert run.error["name"] == "AbortTaskRunError" and run.error["message"] == "nothing to do"


def test_errors_are_retried_then_fail_with_the_error(client: Client) -> None:
    run = _finished(client, client.trigger("always-fails", {}).id)
    assert run.status == RunStatus.FAILED
    assert [a.status for a in run.attempts] == ["FAILED", "FAILED"]
    assert run.error["name"] == "ValueError" and "broken" in run.error["message"]
    assert "always_fails" in run.error["stack_trace"]


def test_max_attempts_from_the_trigger_wins(client: Client) -> None:
    run = _finished(client, client.trigger("always-fails", {}, max_attempts=1).id)
    assert run.attempt_count == 1 and run.status == RunStatus.FAILED


def test_max_duration_times_the_attempt_out(client: Client) -> None:
    run = _finished(client, client.trigger("too-long", {}).id)
    assert run.status == RunStatus.TIMED_OUT
    assert run.error["name"] == "MaxDurationExceeded"


def test_a_queue_concurrency_limit_is_never_exceeded(client: Client) -> None:
    batch = client.batch_trigger([{"payload": {"i": i}} for i in range(4)], task_id="serial")
    runs = [_finished(client, h.id) for h in batch.runs]
    spans = sorted((r.output["start"], r.output["end"]) for r in runs)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, f"two 'serial' runs overlapped: {spans}"


def test_idempotency_key_returns_the_same_run(client: Client) -> None:
    first = client.trigger("echo", {"n": 2}, idempotency_key="order-2")
    second = client.trigger("echo", {"n": 999}, idempotency_key="order-2")
    assert second.id == first.id and second.is_cached and not first.is_cached
    other_task = client.trigger("chatty", {}, idempotency_key="order-2")
    assert other_task.id != first.id


def test_a_failed_run_releases_its_idempotency_key(client: Client) -> None:
    first = client.trigger("always-fails", {}, idempotency_key="retry-me", max_attempts=1)
    assert _finished(client, first.id).status == RunStatus.FAILED
    again = client.trigger("always-fails", {}, idempotency_key="retry-me", max_attempts=1)
    assert again.id != first.id and not again.is_cached


def test_idempotency_key_ttl(client: Client) -> None:
    first = client.trigger("echo", {}, idempotency_key="short", idempotency_key_ttl="1s")
    assert client.trigger("echo", {}, idempotency_key="short").is_cached
    time.sleep(1.1)  # the key's own ttl is what is under test
    assert client.trigger("echo", {}, idempotency_key="short").id != first.id


def test_batch_trigger_keeps_order_and_caches_per_item(client: Client) -> None:
    items = [{"task": "echo", "payload": {"i": i}} for i in range(3)]
    items.append({"task": "echo", "payload": {"i": 0}, "options": {"idempotency_key": "b-0"}})
    items.append({"task": "echo", "payload": {"i": 0}, "options": {"idempotency_key": "b-0"}})
    batch = client.batch_trigger(items)
    assert len(batch.runs) == 5
    assert batch.runs[4].id == batch.runs[3].id and batch.runs[4].is_cached
    outputs = [_finished(client, h.id).output["payload"]["i"] for h in batch.runs[:3]]
    assert outputs == [0, 1, 2]


def test_delay_and_reschedule(client: Client) -> None:
    handle = client.trigger("echo", {}, delay="1h")
    run = client.runs.retrieve(handle.id)
    assert run.status == RunStatus.DELAYED
    assert run.delay_until and run.delay_until > datetime.now(UTC) + timedelta(minutes=59)
    client.runs.reschedule(handle.id, delay="1s")
    assert _finished(client, handle.id).status == RunStatus.COMPLETED
    with pytest.raises(ConflictError, match="only DELAYED"):
        client.runs.reschedule(handle.id, delay="1h")


def test_cancel_queued_and_delayed_runs(client: Client) -> None:
    handle = client.trigger("echo", {}, delay="1h")
    assert client.runs.cancel(handle.id).status == RunStatus.CANCELED
    with pytest.raises(ConflictError, match="already CANCELED"):
        client.runs.cancel(handle.id)


def test_cancel_an_executing_run_stops_it(client: Client) -> None:
    handle = client.trigger("sleepy", {"seconds": 60})
    assert_eventually(lambda: client.runs.retrieve(handle.id).status == RunStatus.EXECUTING, timeout=30)
    client.runs.cancel(handle.id)
    run = client.runs.retrieve(handle.id)
    assert run.status == RunStatus.CANCELED and run.attempts[-1].status == "CANCELED"
    # the slot is free again: another run gets through
    assert _finished(client, client.trigger("echo", {}).id).status == RunStatus.COMPLETED


def test_ttl_expires_a_run_that_did_not_start(client: Client) -> None:
    handle = client.trigger("never-runs", {}, ttl="1s")  # its queue's concurrency limit is 0
    run = _finished(client, handle.id, timeout=15)
    assert run.status == RunStatus.EXPIRED and run.attempt_count == 0
    # A delayed run's ttl starts after its delay: tests/integration/test_papercuts.py


def test_replay_makes_a_new_run_with_the_same_payload(client: Client) -> None:
    original = _finished(client, client.trigger("echo", {"again": True}, tags=["t1"]).id)
    replayed = client.runs.replay(original.id)
    assert replayed.id != original.id
    run = _finished(client, replayed.id)
    assert run.output["payload"] == {"again": True} and run.tags == ["t1"]


def test_list_filters_and_paginates(client: Client, http: httpx.Client) -> None:
    tag = f"list-{time.time_ns()}"
    ids = [client.trigger("echo", {"i": i}, tags=[tag]).id for i in range(7)]
    listed = [r.id for r in client.runs.list(tag=tag, page_size=3)]
    assert listed == list(reversed(ids))  # newest first, every run once across pages
    page = http.get("/api/v1/runs", params={"tag": tag, "limit": 3}).json()
    assert len(page["data"]) == 3 and page["next_cursor"]
    for run_id in ids:
        _finished(client, run_id)
    completed = [r.id for r in client.runs.list(tag=tag, status="COMPLETED", task="echo")]
    assert sorted(completed) == sorted(ids)
    assert not list(client.runs.list(tag=tag, status=["FAILED"]))
    later = datetime.now(UTC) + timedelta(hours=1)
    assert not list(client.runs.list(tag=tag, created_from=later))


def test_sdk_errors_are_typed(client: Client) -> None:
    with pytest.raises(NotFoundError, match="run_missing"):
        client.runs.retrieve("run_missing")
