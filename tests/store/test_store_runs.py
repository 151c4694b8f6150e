"""The store contract, part 2: triggering runs (atomic batches, idempotency), reading them
(scoping, filters, pagination) and the one conditional update."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from sqlalchemy import update

from hightide.core.states import RunStatus
from hightide.errors import AlreadyExistsError, ValidationError
from hightide.store import Store
from hightide.store import schema as t
from hightide.store.records import RunChange, RunFilter
from tests.store.factories import NOW, insert, make_env, new_run

# -- triggering ------------------------------------------------------------------------------


def test_insert_runs_stores_every_field(store: Store) -> None:
    env = make_env(store)
    parent = insert(store, new_run(env))[0]
    new = new_run(
        env,
        "resize",
        created_at=NOW + 1,
        payload={"image": "ü.png", "sizes": [1, 2.5], "deep": {"x": None}},
        tags=["blue", "green"],
        metadata={"progress": 0.5},
        concurrency_key="user-1",
        priority=30.0,
        max_attempts=5,
        retry={"max_attempts": 5, "factor": 2},
        max_duration=120.0,
        ttl_expires_at=NOW + 600,
        parent_run_id=parent.id,
        root_run_id=parent.id,
    )
    [(run, cached)] = store.runs.insert_runs([new], NOW + 1)

    assert cached is False
    assert run == store.runs.get_run(new.id)
    for field in ("id", "environment_id", "task_id", "queue", "payload", "tags", "metadata", "concurrency_key"):
        assert getattr(run, field) == getattr(new, field), field
    for field in ("priority", "max_attempts", "retry", "max_duration", "ttl_expires_at", "parent_run_id"):
        assert getattr(run, field) == getattr(new, field), field
    assert (run.status, run.attempt_count, run.output, run.error, run.worker_id) == (
        RunStatus.QUEUED,
        0,
        None,
        None,
        None,
    )
    assert (run.created_at, run.updated_at, run.started_at, run.finished_at) == (NOW + 1, NOW + 1, None, None)


def test_a_batch_is_inserted_whole_or_not_at_all(store: Store) -> None:
    env = make_env(store)
    first, second, third = (new_run(env, created_at=NOW + i) for i in range(3))
    clash = replace(new_run(env, "resize"), id=first.id)  # the same primary key, mid-batch

    with pytest.raises(AlreadyExistsError):
        store.runs.insert_runs([first, second, clash, third], NOW)

    assert store.runs.list_runs(env, RunFilter(), limit=10) == ([], None)
    assert store.runs.get_run(first.id) is None and store.runs.get_run(second.id) is None
    results = store.runs.insert_runs([first, second, third], NOW)  # the same batch, now valid
    assert [(run.id, cached) for run, cached in results] == [(first.id, False), (second.id, False), (third.id, False)]


def test_an_idempotency_key_returns_the_live_run(store: Store) -> None:
    env = make_env(store)
    keyed = new_run(env, idempotency_key="order-7", idempotency_key_expires_at=NOW + 100)
    original = insert(store, keyed)[0]

    again = new_run(env, created_at=NOW + 1, idempotency_key="order-7", idempotency_key_expires_at=NOW + 101)
    [(run, cached)] = store.runs.insert_runs([again], NOW + 1)
    assert cached is True
    assert run == original
    assert store.runs.get_run(again.id) is None

    # Within one batch as well: the second item sees the first.
    twins = [new_run(env, idempotency_key="order-8", idempotency_key_expires_at=NOW + 100) for _ in range(2)]
    results = store.runs.insert_runs(twins, NOW)
    assert [(run.id, cached) for run, cached in results] == [(twins[0].id, False), (twins[0].id, True)]
    assert len(store.runs.list_runs(env, RunFilter(), limit=10)[0]) == 2


def test_an_idempotency_key_is_scoped_to_task_and_environment(store: Store) -> None:
    env = make_env(store)
    prod = make_env(store, "prod")
    key = {"idempotency_key": "k", "idempotency_key_expires_at": NOW + 100}
    runs = insert(store, new_run(env, "email", **key), new_run(env, "resize", **key), new_run(prod, "email", **key))
    assert len({run.id for run in runs}) == 3


def test_an_expired_idempotency_key_starts_a_new_run(store: Store) -> None:
    env = make_env(store)
    old = insert(store, new_run(env, idempotency_key="k", idempotency_key_expires_at=NOW + 100))[0]

    fresh = new_run(env, created_at=NOW + 100, idempotency_key="k", idempotency_key_expires_at=NOW + 200)
    [(run, cached)] = store.runs.insert_runs([fresh], NOW + 100)

    assert (run.id, cached, run.idempotency_key) == (fresh.id, False, "k")
    released = store.runs.get_run(old.id)
    assert released is not None and released.idempotency_key is None
    [(run, cached)] = store.runs.insert_runs([replace(fresh, id="run_other")], NOW + 150)
    assert (run.id, cached) == (fresh.id, True)


def test_a_key_without_expiry_never_expires(store: Store) -> None:
    env = make_env(store)
    original = insert(store, new_run(env, idempotency_key="forever"))[0]
    [(run, cached)] = store.runs.insert_runs([new_run(env, idempotency_key="forever")], NOW + 10**9)
    assert (run.id, cached) == (original.id, True)


def test_a_released_idempotency_key_can_be_used_again(store: Store) -> None:
    env = make_env(store)
    old = insert(store, new_run(env, idempotency_key="k", idempotency_key_expires_at=NOW + 100))[0]
    released = store.runs.update_run(
        old.id, expect_status="QUEUED", expect_attempt=None, values={"idempotency_key": None}, now=NOW + 1
    )
    assert released is not None and released.idempotency_key is None

    [(run, cached)] = store.runs.insert_runs([new_run(env, idempotency_key="k")], NOW + 2)
    assert cached is False and run.id != old.id


# -- reading ---------------------------------------------------------------------------------


def test_get_run_is_scoped_by_environment(store: Store) -> None:
    env = make_env(store)
    prod = make_env(store, "prod")
    run = insert(store, new_run(env))[0]
    assert store.runs.get_run(run.id) == run
    assert store.runs.get_run(run.id, env) == run
    assert store.runs.get_run(run.id, prod) is None
    assert store.runs.get_run("run_missing", env) is None


def test_list_runs_filters(store: Store) -> None:
    env = make_env(store)
    prod = make_env(store, "prod")
    parent = insert(store, new_run(env, created_at=NOW))[0]
    runs = insert(
        store,
        new_run(env, "email", created_at=NOW + 1, tags=["blue"], parent_run_id=parent.id),
        new_run(env, "resize", created_at=NOW + 2, tags=["blue", "red"]),
        new_run(env, "resize", created_at=NOW + 3, status=RunStatus.DELAYED, parent_run_id=parent.id),
        new_run(env, "email", created_at=NOW + 4, status=RunStatus.DELAYED, tags=["red"]),
        new_run(prod, "email", created_at=NOW + 5, tags=["blue"], parent_run_id=parent.id),
    )
    a, b, c, d, _ = (run.id for run in runs)

    def ids(**flt: object) -> list[str]:
        page, cursor = store.runs.list_runs(env, RunFilter(**flt), limit=100)  # type: ignore[arg-type]
        assert cursor is None
        return [run.id for run in page]

    assert ids() == [d, c, b, a, parent.id]  # newest first, this environment only
    assert ids(statuses=("DELAYED",)) == [d, c]
    assert ids(statuses=("DELAYED", "QUEUED")) == [d, c, b, a, parent.id]
    assert ids(statuses=("COMPLETED",)) == []
    assert ids(task_ids=("resize",)) == [c, b]
    assert ids(task_ids=("resize", "email")) == [d, c, b, a, parent.id]
    assert ids(tag="blue") == [b, a]
    assert ids(tag="red") == [d, b]
    assert ids(tag="green") == []
    assert ids(created_from=NOW + 2) == [d, c, b]  # from is inclusive
    assert ids(created_to=NOW + 2) == [a, parent.id]  # to is exclusive
    assert ids(created_from=NOW + 1, created_to=NOW + 3) == [b, a]
    assert ids(parent_run_id=parent.id) == [c, a]
    assert ids(task_ids=("email",), tag="red", statuses=("DELAYED",)) == [d]


def _pages(store: Store, env: str, flt: RunFilter, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page, cursor = store.runs.list_runs(env, flt, limit=limit, cursor=cursor)
        pages.append([run.id for run in page])
        if cursor is None:
            return pages
        assert len(pages) < 100, "pagination does not end"


@pytest.mark.parametrize("limit", [1, 4, 7, 30])
def test_cursor_pagination_returns_each_run_once_newest_first(store: Store, limit: int) -> None:
    env = make_env(store)
    # Three runs per timestamp: ties on created_at must not lose or repeat runs across pages.
    news = [new_run(env, created_at=NOW + i // 3 + 0.125) for i in range(24)]
    random.Random(7).shuffle(news)
    insert(store, *news)
    expected = [new.id for new in sorted(news, key=lambda n: (n.created_at, n.id), reverse=True)]

    pages = _pages(store, env, RunFilter(), limit)

    assert [run_id for page in pages for run_id in page] == expected
    assert all(len(page) == limit for page in pages[:-1])
    assert 1 <= len(pages[-1]) <= limit


def test_cursor_pagination_keeps_the_filter(store: Store) -> None:
    env = make_env(store)
    news = [new_run(env, "email" if i % 2 else "resize", created_at=NOW + i) for i in range(10)]
    insert(store, *news)
    expected = [new.id for new in reversed(news) if new.task_id == "email"]
    pages = _pages(store, env, RunFilter(task_ids=("email",)), limit=2)
    assert [run_id for page in pages for run_id in page] == expected


def test_a_foreign_cursor_is_a_validation_error(store: Store) -> None:
    env = make_env(store)
    with pytest.raises(ValidationError):
        store.runs.list_runs(env, RunFilter(), limit=10, cursor="not-a-cursor")


# -- the one conditional update --------------------------------------------------------------


def test_update_run_applies_values_when_the_run_is_as_expected(store: Store) -> None:
    env = make_env(store)
    run = insert(store, new_run(env))[0]
    updated = store.runs.update_run(
        run.id,
        expect_status="QUEUED",
        expect_attempt=0,
        values={"status": "CANCELED", "error": {"name": "Canceled", "n": [1]}, "finished_at": NOW + 5},
        now=NOW + 5,
    )
    assert updated is not None
    assert (updated.status, updated.error, updated.finished_at, updated.updated_at) == (
        RunStatus.CANCELED,
        {"name": "Canceled", "n": [1]},
        NOW + 5,
        NOW + 5,
    )
    assert store.runs.get_run(run.id) == updated


def test_update_run_is_a_no_op_when_the_run_moved_on(store: Store) -> None:
    env = make_env(store)
    run = insert(store, new_run(env))[0]
    cancel = {"status": "CANCELED", "finished_at": NOW + 1}

    assert (
        store.runs.update_run(run.id, expect_status="EXECUTING", expect_attempt=None, values=cancel, now=NOW + 1)
        is None
    )
    assert store.runs.update_run(run.id, expect_status="QUEUED", expect_attempt=1, values=cancel, now=NOW + 1) is None
    assert (
        store.runs.update_run("run_missing", expect_status="QUEUED", expect_attempt=None, values=cancel, now=NOW)
        is None
    )
    assert store.runs.get_run(run.id) == run

    assert store.runs.update_run(run.id, expect_status="QUEUED", expect_attempt=None, values=cancel, now=NOW + 1)
    # The same request again, as a retried HTTP call would send it: nothing happens.
    assert (
        store.runs.update_run(run.id, expect_status="QUEUED", expect_attempt=None, values=cancel, now=NOW + 2) is None
    )
    after = store.runs.get_run(run.id)
    assert after is not None and (after.status, after.updated_at) == (RunStatus.CANCELED, NOW + 1)


def test_update_run_closes_the_attempt_in_the_same_transaction(store: Store) -> None:
    env = make_env(store)
    run = insert(store, new_run(env))[0]
    [claimed] = store.claims.claim_runs(env, ["email"], worker_id="w1", version="v", limit=1, lease_seconds=30, now=NOW)
    done = store.runs.update_run(
        run.id,
        expect_status="EXECUTING",
        expect_attempt=1,
        values={"status": "FAILED", "output": None, "finished_at": NOW + 3},
        attempt_values={"status": "FAILED", "finished_at": NOW + 3, "error": {"name": "Boom"}},
        now=NOW + 3,
    )
    assert done is not None and done.status == RunStatus.FAILED
    [attempt] = store.runs.list_attempts(claimed.id)
    assert (attempt.number, attempt.status, attempt.finished_at, attempt.error) == (
        1,
        "FAILED",
        NOW + 3,
        {"name": "Boom"},
    )


def test_update_runs_applies_the_changes_whose_runs_are_as_expected(store: Store) -> None:
    env = make_env(store)
    insert(store, *(new_run(env, created_at=NOW - 10 + i) for i in range(6)))
    claimed = store.claims.claim_runs(env, ["email"], worker_id="w1", version="v", limit=6, lease_seconds=30, now=NOW)
    done, stale_attempt, stale_execution, held, retried, lapsed = claimed
    close = {"status": "FAILED", "finished_at": NOW + 3, "error": {"name": "Boom"}}
    changes = [
        RunChange(done.id, "EXECUTING", 1, {"status": "COMPLETED", "output": {"w": 1}}, close, expect_execution=1),
        RunChange(stale_attempt.id, "EXECUTING", 2, {"status": "COMPLETED"}),
        RunChange(stale_execution.id, "EXECUTING", 1, {"status": "COMPLETED"}, expect_execution=2),
        RunChange(held.id, "EXECUTING", 1, {"status": "CRASHED"}, lease_lapsed_by=NOW + 29),  # lease ends NOW + 30
        RunChange(retried.id, "EXECUTING", 1, {"status": "QUEUED", "available_at": NOW + 50}, close),
        RunChange(lapsed.id, "EXECUTING", 1, {"status": "CRASHED"}, lease_lapsed_by=NOW + 30),
        RunChange("run_missing", "EXECUTING", 1, {"status": "COMPLETED"}),
    ]

    assert store.runs.update_runs(env, changes, NOW + 3) == [True, False, False, False, True, True, False]

    after = {run.id: store.runs.get_run(run.id) for run in claimed}
    assert (after[done.id].status, after[done.id].output, after[done.id].updated_at) == (
        RunStatus.COMPLETED,
        {"w": 1},
        NOW + 3,
    )
    for unchanged in (stale_attempt, stale_execution, held):
        assert after[unchanged.id] == unchanged
    assert (after[retried.id].status, after[retried.id].available_at) == (RunStatus.QUEUED, NOW + 50)
    assert after[lapsed.id].status == RunStatus.CRASHED
    closed = {run.id: store.runs.list_attempts(run.id)[0] for run in (done, stale_attempt, retried)}
    assert (closed[done.id].status, closed[done.id].finished_at, closed[done.id].error) == (
        "FAILED",
        NOW + 3,
        {"name": "Boom"},
    )
    assert closed[stale_attempt.id].status == "EXECUTING"
    assert closed[retried.id].status == "FAILED"
    # The retried run keeps its place in the claim order (ranked at its new available_at).
    later = insert(store, new_run(env, created_at=NOW + 40))[0]
    requeued = store.claims.claim_runs(
        env, ["email"], worker_id="w2", version="v", limit=5, lease_seconds=30, now=NOW + 60
    )
    assert [run.id for run in requeued] == [later.id, retried.id]


def test_update_runs_applies_only_the_first_of_two_changes_of_one_run(store: Store) -> None:
    env = make_env(store)
    insert(store, new_run(env))
    [run] = store.claims.claim_runs(env, ["email"], worker_id="w1", version="v", limit=1, lease_seconds=30, now=NOW)
    twice = RunChange(run.id, "EXECUTING", 1, {"status": "COMPLETED", "output": 1})

    assert store.runs.update_runs(env, [twice, replace(twice, values={"status": "FAILED"})], NOW + 1) == [True, False]
    after = store.runs.get_run(run.id)
    assert after is not None and (after.status, after.output) == (RunStatus.COMPLETED, 1)


def test_update_run_keeps_the_claim_order_in_step_with_priority(store: Store) -> None:
    env = make_env(store)
    moved, steady, boosted = insert(
        store,
        new_run(env, created_at=NOW, priority=5.0),
        new_run(env, created_at=NOW - 5),  # ranked at NOW - 5
        new_run(env, created_at=NOW + 1),
    )
    # Available later but with a bigger priority: ranked at NOW + 10 - 20 = NOW - 10.
    updated = store.runs.update_run(
        moved.id,
        expect_status="QUEUED",
        expect_attempt=None,
        values={"available_at": NOW + 10, "priority": 20.0},
        now=NOW + 1,
    )
    assert updated is not None and (updated.available_at, updated.priority) == (NOW + 10, 20.0)
    # A new priority alone: ranked at NOW + 1 - 30 = NOW - 29.
    assert store.runs.update_run(
        boosted.id, expect_status="QUEUED", expect_attempt=None, values={"priority": 30.0}, now=NOW
    )

    claimed = store.claims.claim_runs(
        env, ["email"], worker_id="w", version="v", limit=10, lease_seconds=30, now=NOW + 10
    )
    assert [run.id for run in claimed] == [boosted.id, moved.id, steady.id]


# -- time-driven changes re-check that the time came ------------------------------------------


def test_a_delay_that_ended_is_applied_once_and_not_after_a_reschedule(store: Store) -> None:
    env = make_env(store)
    run = insert(store, new_run(env, status=RunStatus.DELAYED, available_at=NOW + 10, delay_until=NOW + 10))[0]
    enqueue = RunChange(run.id, "DELAYED", None, {"status": "QUEUED", "delay_until": None}, delay_ended_by=NOW + 11)

    # What the scheduler read as due was rescheduled an hour later in between: refused.
    later = {"delay_until": NOW + 3600, "available_at": NOW + 3600}
    assert (
        store.runs.update_run(run.id, expect_status="DELAYED", expect_attempt=None, values=later, now=NOW) is not None
    )
    assert store.runs.apply_change(enqueue, NOW + 11) is None
    assert store.runs.get_run(run.id).status == RunStatus.DELAYED  # type: ignore[union-attr]

    # Once due, the first of two schedulers applies it and the second's identical change is a no-op.
    due = replace(enqueue, delay_ended_by=NOW + 3601)
    applied = store.runs.apply_change(due, NOW + 3601)
    assert applied is not None and applied.status == RunStatus.QUEUED
    assert store.runs.apply_change(due, NOW + 3601) is None


def test_a_ttl_that_ended_does_not_expire_a_run_that_started_meanwhile(store: Store) -> None:
    env = make_env(store)
    fresh, started = insert(store, new_run(env, ttl_expires_at=NOW + 5), new_run(env, ttl_expires_at=NOW + 5))
    # `started` was claimed, failed and queued again since the scheduler read it: QUEUED again,
    # on the same attempt count the scheduler saw, but it has started.
    with store.engine.begin() as conn:
        conn.execute(update(t.runs).where(t.runs.c.id == started.id).values(started_at=NOW + 1))
    expire = {"status": "EXPIRED", "finished_at": NOW + 6, "idempotency_key": None}
    changes = [RunChange(r.id, "QUEUED", None, expire, ttl_ended_by=NOW + 6) for r in (fresh, started)]
    assert store.runs.update_runs(env, changes, NOW + 6) == [True, False]
    assert [store.runs.get_run(r.id).status for r in (fresh, started)] == [  # type: ignore[union-attr]
        RunStatus.EXPIRED,
        RunStatus.QUEUED,
    ]
    assert store.runs.apply_change(changes[1], NOW + 6) is None
