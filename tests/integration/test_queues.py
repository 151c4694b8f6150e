"""Queues through a real server and worker on both backends, with the SDK: a paused queue takes
triggers and starts nothing until resumed; an override replaces the declared concurrency limit until
reset; unknown queues and bad limits are refused."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from hightide import Client, NotFoundError, RunStatus, ValidationError
from tests.integration.conftest import Stack
from tests.support import assert_eventually, wait_finished

LANE = "lane"  # declared with a concurrency limit of 2 (project/trigger/queues.py)


@pytest.fixture
def lane(client: Client) -> Iterator[str]:
    """The lane queue, left as declared after the test (the stack is shared)."""
    yield LANE
    client.queues.resume(LANE)
    client.queues.reset_concurrency_limit(LANE)
    assert_eventually(lambda: client.queues.retrieve(LANE).executing + client.queues.retrieve(LANE).queued == 0)


def test_a_paused_queue_takes_triggers_and_starts_nothing_until_resumed(client: Client, lane: str) -> None:
    paused = client.queues.pause(lane)
    assert paused.paused and paused.paused_at is not None

    held = client.trigger("in-lane", {})
    # A run of another queue triggered after it finishes: the worker is claiming, and passes it by.
    wait_finished(client, client.trigger("echo", {}).id)
    assert client.runs.retrieve(held.id).status == RunStatus.QUEUED
    info = client.queues.retrieve(lane)
    assert (info.paused, info.queued, info.executing, info.tasks) == (True, 1, 0, ["in-lane"])

    resumed = client.queues.resume(lane)
    assert (resumed.paused, resumed.paused_at) == (False, None)
    assert wait_finished(client, held.id).status == RunStatus.COMPLETED


def test_an_override_replaces_the_declared_limit_until_reset(client: Client, lane: str) -> None:
    declared = client.queues.retrieve(lane)
    assert (declared.concurrency_limit, declared.declared_concurrency_limit, declared.concurrency_limit_override) == (
        2,
        2,
        None,
    )
    over = client.queues.override_concurrency_limit(lane, 1)
    assert (over.concurrency_limit, over.declared_concurrency_limit, over.concurrency_limit_override) == (1, 2, 1)
    assert over.overridden_at is not None

    handles = [client.trigger("in-lane", {"seconds": 1}) for _ in range(3)]
    assert_eventually(lambda: client.queues.retrieve(lane).executing == 1, what="one run of the lane executing")
    seen = set()

    def all_done() -> bool:
        info = client.queues.retrieve(lane)
        seen.add(info.executing)
        return info.executing + info.queued == 0

    assert_eventually(all_done, timeout=30, interval=0.1, what="the lane's runs to finish one at a time")
    assert max(seen) == 1
    assert all(client.runs.retrieve(h.id).status == RunStatus.COMPLETED for h in handles)

    reset = client.queues.reset_concurrency_limit(lane)
    assert (reset.concurrency_limit, reset.concurrency_limit_override, reset.overridden_at) == (2, None, None)


def test_listing_shows_every_queue_and_a_task_queue_is_named_with_its_slash(client: Client) -> None:
    names = [q.name for q in client.queues.list()]
    assert names == sorted(names) and {"lane", "task/echo", "serial"} <= set(names)
    echo = client.queues.retrieve("task/echo")
    assert (echo.name, echo.tasks, echo.concurrency_limit) == ("task/echo", ["echo"], None)


def test_unknown_queues_and_bad_limits_are_refused(client: Client, stack: Stack, http: httpx.Client) -> None:
    with pytest.raises(NotFoundError, match="no queue 'nope'"):
        client.queues.pause("nope")
    with pytest.raises(ValidationError):
        client.queues.override_concurrency_limit(LANE, -1)
    answer = http.put("/api/v1/queues/lane/concurrency-limit", json={"concurrency_limit": "many"})
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "validation_error"
    assert http.get("/api/v1/queues/lane", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.queues.retrieve(LANE).concurrency_limit_override is None
