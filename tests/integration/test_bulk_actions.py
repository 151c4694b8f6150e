"""Bulk actions through a real server and worker on both backends, with the SDK: cancel by a filter
(runs made later are left alone), replay by ids, progress and counts, what is refused."""

from __future__ import annotations

import uuid

import httpx
import pytest

from hightide import Client, NotFoundError, RunStatus, ValidationError
from tests.support import assert_eventually, wait_finished


def test_a_bulk_cancel_by_filter_cancels_what_it_selected_and_skips_nothing_else(client: Client) -> None:
    tag = f"bulk-{uuid.uuid4().hex[:8]}"
    delayed = [client.trigger("echo", {"n": i}, delay="1h", tags=[tag]).id for i in range(120)]
    done = wait_finished(client, client.trigger("echo", {}, tags=[tag]).id)

    job = client.runs.bulk.cancel(tag=tag)
    assert (job.action, job.status, job.total) == ("cancel", "RUNNING", 121)
    later = client.trigger("echo", {}, delay="1h", tags=[tag]).id  # made after: not in the action

    finished = client.runs.bulk.wait(job.id, timeout=60)
    assert (finished.status, finished.processed, finished.succeeded, finished.skipped, finished.failed) == (
        "COMPLETED",
        121,
        120,
        1,  # the completed run: nothing to cancel
        0,
    )
    assert finished.progress == 1.0 and finished.finished_at is not None
    assert {client.runs.retrieve(i).status for i in delayed} == {RunStatus.CANCELED}
    assert client.runs.retrieve(done.id).status == RunStatus.COMPLETED
    assert client.runs.retrieve(later).status == RunStatus.DELAYED
    client.runs.cancel(later)


def test_a_bulk_replay_by_ids_makes_one_new_run_each(client: Client) -> None:
    tag = f"bulk-{uuid.uuid4().hex[:8]}"
    first = [wait_finished(client, client.trigger("echo", {"n": i}, tags=[tag]).id) for i in range(3)]
    job = client.runs.bulk.wait(client.runs.bulk.replay(ids=[r.id for r in first]).id, timeout=60)
    assert (job.status, job.succeeded, job.failed) == ("COMPLETED", 3, 0)
    runs = list(client.runs.list(tag=tag))
    assert len(runs) == 6
    assert sorted(r.payload["n"] for r in runs if r.id not in {f.id for f in first}) == [0, 1, 2]
    assert job.id in [j.id for j in client.runs.bulk.list()]


def test_bulk_actions_refuse_an_empty_filter_unknown_ids_and_report_failures(
    client: Client, http: httpx.Client
) -> None:
    with pytest.raises(ValidationError, match="must name a status"):
        client.runs.bulk.cancel()
    with pytest.raises(ValidationError, match="status"):
        client.runs.bulk.cancel(status="NOT_A_STATUS")
    answer = http.post("/api/v1/bulk-actions", json={"action": "delete", "ids": ["run_x"]})
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "validation_error"
    with pytest.raises(NotFoundError):
        client.runs.bulk.retrieve("bulk_nope")

    job = client.runs.bulk.wait(client.runs.bulk.replay(ids=["run_does_not_exist"]).id, timeout=30)
    assert (job.status, job.failed) == ("COMPLETED", 1)
    assert job.failures[0]["run_id"] == "run_does_not_exist" and "not found" in job.failures[0]["message"]


def test_an_aborted_bulk_action_stops(client: Client) -> None:
    tag = f"bulk-{uuid.uuid4().hex[:8]}"
    ids = [
        h.id
        for h in client.batch_trigger(
            [{"task": "echo", "payload": {}, "options": {"delay": "1h", "tags": [tag]}}] * 1000
        ).runs
    ]
    job = client.runs.bulk.cancel(ids=ids)
    aborted = client.runs.bulk.abort(job.id)
    assert aborted.status == "ABORTED" and aborted.is_finished
    # The page it was on when the abort came is finished and counted; it went no further.
    assert_eventually(
        lambda: (
            len(list(client.runs.list(tag=tag, status="CANCELED", page_size=1000)))
            == client.runs.bulk.retrieve(job.id).succeeded
        ),
        timeout=30,
    )
    final = client.runs.bulk.retrieve(job.id)
    assert final.status == "ABORTED" and final.processed < len(ids)
    client.runs.bulk.wait(client.runs.bulk.cancel(tag=tag).id, timeout=60)  # leave nothing delayed


def test_a_bulk_cancel_ends_waiting_parents_their_children_and_their_open_attempts(client: Client) -> None:
    tag = f"bulk-{uuid.uuid4().hex[:8]}"
    parents = [client.trigger("parent-of-waiter", {"tag": tag}).id for _ in range(3)]
    delayed = client.trigger("echo", {}, delay="1h").id
    assert_eventually(
        lambda: len([r for r in client.runs.list(task="token-waiter", tag=tag) if r.status == RunStatus.WAITING]) == 3,
        timeout=30,
        what="the three children to wait on their tokens",
    )
    assert_eventually(lambda: all(client.runs.retrieve(p).status == RunStatus.WAITING for p in parents), timeout=30)

    job = client.runs.bulk.wait(client.runs.bulk.cancel(ids=[*parents, delayed]).id, timeout=60)
    assert (job.status, job.succeeded, job.skipped, job.failed) == ("COMPLETED", 4, 0, 0)
    for parent in map(client.runs.retrieve, parents):
        assert parent.status == RunStatus.CANCELED
        assert [a.status for a in parent.attempts] == ["CANCELED"]  # its open attempt ended with it
    children = list(client.runs.list(task="token-waiter", tag=tag))
    assert len(children) == 3 and {c.status for c in children} == {RunStatus.CANCELED}
    assert client.runs.retrieve(delayed).status == RunStatus.CANCELED
