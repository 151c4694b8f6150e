"""The store contract, part 5: releases (a worker gives runs back unfinished) and claim ids (a claim
tried again gets what it took; a claim given up on takes nothing)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hightide.core.states import RunStatus
from hightide.store import Store
from hightide.store.records import Run
from hightide.store.releases import Held
from tests.store.factories import NOW, finish, insert, make_env, new_run

LEASE = 30.0


def claim(
    store: Store,
    env: str,
    limit: int = 10,
    *,
    worker_id: str = "w1",
    now: float = NOW,
    claim_id: str | None = None,
    last: bool = True,
) -> list[Run]:
    return store.claims.claim_runs(
        env,
        ["email"],
        worker_id=worker_id,
        version="20270115.1",
        limit=limit,
        lease_seconds=LEASE,
        now=now,
        claim_id=claim_id,
        last=last,
    )


def held(run: Run) -> Held:
    return Held(run.id, run.attempt_count, run.executions)


def test_a_released_run_is_queued_at_once_and_continues_its_attempt(store: Store) -> None:
    env = make_env(store)
    run = insert(store, new_run(env, created_at=NOW - 10))[0]
    [claimed] = claim(store, env, worker_id="w1")

    [released] = store.releases.release_runs(env, "w1", [held(claimed)], now=NOW + 1)

    assert released == store.runs.get_run(run.id)
    assert (released.status, released.attempt_count, released.lease_expires_at) == (RunStatus.QUEUED, 1, None)
    assert released.available_at <= NOW + 1  # claimable at once
    [attempt] = store.runs.list_attempts(run.id)
    assert (attempt.status, attempt.finished_at, attempt.error) == ("RELEASED", None, None)

    [again] = claim(store, env, worker_id="w2", now=NOW + 2)
    assert (again.id, again.attempt_count, again.worker_id) == (run.id, 1, "w2")
    assert again.executions == claimed.executions + 1
    [attempt] = store.runs.list_attempts(run.id)
    assert (attempt.number, attempt.status, attempt.worker_id) == (1, "EXECUTING", "w2")
    done = finish(store, again, now=NOW + 3)
    assert (done.status, done.attempt_count) == (RunStatus.COMPLETED, 1)


def test_a_released_run_keeps_its_place_in_the_queue(store: Store) -> None:
    env = make_env(store)
    first = insert(store, new_run(env, created_at=NOW - 10))[0]
    [claimed] = claim(store, env, limit=1)
    insert(store, *(new_run(env, created_at=NOW - 5 + i) for i in range(3)))

    store.releases.release_runs(env, "w1", [held(claimed)], now=NOW)

    assert [r.id for r in claim(store, env, limit=1, worker_id="w2")] == [first.id]


def test_a_release_frees_the_concurrency_slot(store: Store) -> None:
    env = make_env(store, concurrency_limit=1)
    insert(store, new_run(env, created_at=NOW - 10), new_run(env, created_at=NOW - 9))
    [claimed] = claim(store, env)
    assert claim(store, env, worker_id="w2") == []

    store.releases.release_runs(env, "w1", [held(claimed)], now=NOW)

    assert [r.id for r in claim(store, env, worker_id="w2")] == [claimed.id]


@pytest.mark.parametrize(
    "stale",
    [
        lambda run: Held(run.id, run.attempt_count + 1, run.executions),  # another attempt
        lambda run: Held(run.id, run.attempt_count, run.executions + 1),  # another execution
    ],
)
def test_a_release_of_an_attempt_no_longer_held_is_a_no_op(store: Store, stale: Callable[[Run], Held]) -> None:
    env = make_env(store)
    insert(store, new_run(env))
    [claimed] = claim(store, env)

    assert store.releases.release_runs(env, "w1", [stale(claimed)], now=NOW) == []
    assert store.releases.release_runs(env, "w2", [held(claimed)], now=NOW) == []  # not that worker's
    assert store.runs.get_run(claimed.id) == claimed


def test_a_release_after_the_run_moved_on_is_a_no_op(store: Store) -> None:
    env = make_env(store)
    insert(store, new_run(env, created_at=NOW - 2), new_run(env, created_at=NOW - 1))
    done, lost = claim(store, env)
    finish(store, done, now=NOW + 1)
    # Its lease lapsed: failed and queued for attempt 2 by the scheduler, then claimed elsewhere.
    store.runs.update_run(
        lost.id, expect_status="EXECUTING", expect_attempt=1, values={"status": "QUEUED"}, now=NOW + LEASE
    )
    [retried] = claim(store, env, worker_id="w2", now=NOW + LEASE + 1)
    assert retried.attempt_count == 2

    assert store.releases.release_runs(env, "w1", [held(done), held(lost)], now=NOW + LEASE + 2) == []
    assert store.runs.get_run(done.id).status == RunStatus.COMPLETED  # type: ignore[union-attr]
    assert store.runs.get_run(lost.id) == retried
    # Released twice: the second is a no-op too.
    assert len(store.releases.release_runs(env, "w2", [held(retried)], now=NOW + LEASE + 3)) == 1
    assert store.releases.release_runs(env, "w2", [held(retried)], now=NOW + LEASE + 4) == []


def test_a_resumed_run_released_continues_the_same_attempt(store: Store) -> None:
    env = make_env(store)
    insert(store, new_run(env))
    [first] = claim(store, env)
    store.releases.release_runs(env, "w1", [held(first)], now=NOW)
    [second] = claim(store, env, worker_id="w2")
    store.releases.release_runs(env, "w2", [held(second)], now=NOW + 1)
    [third] = claim(store, env, worker_id="w3", now=NOW + 2)

    assert [r.attempt_count for r in (first, second, third)] == [1, 1, 1]
    assert [a.number for a in store.runs.list_attempts(first.id)] == [1]


# -- claim ids -------------------------------------------------------------------------------------


@pytest.fixture
def two_stores(store: Store, database_url: str, open_stores: Callable[[str], Store]) -> list[Store]:
    """The test's store and a second one on the same database, as two servers would have."""
    return [store, open_stores(database_url)]


def test_a_claim_tried_again_gets_the_same_runs_on_any_server(two_stores: list[Store]) -> None:
    one, two = two_stores
    env = make_env(one)
    insert(one, *(new_run(env, created_at=NOW - 10 + i) for i in range(5)))

    taken = claim(one, env, limit=2, claim_id="clm-1")
    again = claim(two, env, limit=3, claim_id="clm-1", now=NOW + 1)  # the answer was lost: same id

    assert [r.id for r in again] == [r.id for r in taken]
    assert again == [one.runs.get_run(r.id) for r in taken]  # not claimed twice: same attempt, same execution
    others = claim(two, env, limit=10, claim_id="clm-2")
    assert len(others) == 3 and not {r.id for r in others} & {r.id for r in taken}
    assert claim(one, env, claim_id="clm-1", worker_id="w2") == []  # another worker's claim id


def test_a_released_claim_gives_its_runs_back_and_takes_nothing_more(two_stores: list[Store]) -> None:
    one, two = two_stores
    env = make_env(one)
    insert(one, *(new_run(env, created_at=NOW - 10 + i) for i in range(3)))
    taken = claim(one, env, limit=2, claim_id="clm-1")

    released = two.releases.release_runs(env, "w1", claim_ids=["clm-1"], now=NOW + 1)

    assert sorted(r.id for r in released) == sorted(r.id for r in taken)
    assert all(r.status == RunStatus.QUEUED and r.attempt_count == 0 for r in released)  # never received
    assert claim(one, env, claim_id="clm-1", now=NOW + 2) == []  # a late try of the released claim
    assert len(claim(one, env, claim_id="clm-2", now=NOW + 2)) == 3


def test_a_claim_released_before_it_arrives_takes_nothing(store: Store) -> None:
    env = make_env(store)
    insert(store, new_run(env))

    assert store.releases.release_runs(env, "w1", claim_ids=["clm-late"], now=NOW) == []

    assert claim(store, env, claim_id="clm-late") == []
    assert len(claim(store, env, claim_id="clm-next")) == 1


def test_releasing_another_workers_claim_releases_nothing(store: Store) -> None:
    env = make_env(store)
    insert(store, new_run(env))
    [taken] = claim(store, env, claim_id="clm-1", worker_id="w1")

    assert store.releases.release_runs(env, "w2", claim_ids=["clm-1"], now=NOW) == []

    assert store.runs.get_run(taken.id) == taken
    assert claim(store, env, claim_id="clm-1", worker_id="w1") == [taken]  # still w1's to retry


def test_a_claim_id_that_took_nothing_on_a_round_before_its_last_may_claim_later(store: Store) -> None:
    env = make_env(store)
    assert claim(store, env, claim_id="clm-1", last=False) == []  # an empty long-poll round
    run = insert(store, new_run(env))[0]

    assert [r.id for r in claim(store, env, claim_id="clm-1")] == [run.id]


def test_a_claim_id_answered_empty_takes_nothing_on_any_server(two_stores: list[Store]) -> None:
    """Try 1 long-polls on one server for a worker that hung up; try 2, on another, is answered
    empty at its deadline and the worker moves on: try 1 must not take runs the worker never sees."""
    one, two = two_stores
    env = make_env(one)
    assert claim(one, env, claim_id="clm-1", last=False) == []  # try 1, first look
    assert claim(two, env, claim_id="clm-1", now=NOW + 1) == []  # try 2, answered empty
    run = insert(one, new_run(env, created_at=NOW + 1))[0]

    assert claim(one, env, claim_id="clm-1", now=NOW + 2, last=False) == []  # try 1 wakes for it
    assert claim(one, env, claim_id="clm-1", now=NOW + 3) == []
    assert one.runs.get_run(run.id).status == RunStatus.QUEUED
    assert [r.id for r in claim(two, env, claim_id="clm-2", now=NOW + 3)] == [run.id]  # the next claim


def test_a_claim_that_finds_its_id_took_runs_returns_them_on_its_last_look(two_stores: list[Store]) -> None:
    one, two = two_stores
    env = make_env(one)
    insert(one, *(new_run(env, created_at=NOW - 10 + i) for i in range(2)))
    taken = claim(one, env, limit=1, claim_id="clm-1", last=False)

    again = claim(two, env, limit=5, claim_id="clm-1", now=NOW + 1)

    assert [(r.id, r.executions) for r in again] == [(r.id, r.executions) for r in taken]  # not one more run


# -- releases of runs that never started ------------------------------------------------------------


def test_a_run_given_back_before_its_first_start_is_as_if_never_claimed(store: Store) -> None:
    """Prefetched and never started: no start time (so its ttl still applies), no attempt."""
    env = make_env(store)
    run = insert(store, new_run(env, ttl_expires_at=NOW + 60))[0]
    [taken] = claim(store, env)

    [released] = store.releases.release_runs(
        env, "w1", [Held(taken.id, 1, taken.executions, started=False)], now=NOW + 1
    )

    assert (released.status, released.attempt_count, released.started_at) == (RunStatus.QUEUED, 0, None)
    assert store.runs.list_attempts(run.id) == []
    assert [r.id for r in store.claims.due_runs(NOW + 61)["expired"]] == [run.id]
    [again] = claim(store, env, now=NOW + 2)
    assert (again.attempt_count, again.executions) == (1, 1)
    assert [(a.number, a.status) for a in store.runs.list_attempts(run.id)] == [(1, "EXECUTING")]
    # Given back unstarted once more: still as if never claimed, however many times.
    [twice] = store.releases.release_runs(env, "w1", [Held(run.id, 1, 1, started=False)], now=NOW + 3)
    assert (twice.attempt_count, twice.executions, twice.started_at) == (0, 0, None)
    assert store.runs.list_attempts(run.id) == []


def test_a_run_given_back_unstarted_after_it_ran_elsewhere_keeps_its_start_and_attempt(store: Store) -> None:
    env = make_env(store)
    run = insert(store, new_run(env, ttl_expires_at=NOW + 60))[0]
    [first] = claim(store, env)
    store.releases.release_runs(env, "w1", [held(first)], now=NOW + 1)  # it ran: released as started
    [second] = claim(store, env, worker_id="w2", now=NOW + 2)

    [released] = store.releases.release_runs(
        env, "w2", [Held(run.id, 1, second.executions, started=False)], now=NOW + 3
    )

    assert (released.attempt_count, released.started_at) == (1, NOW)
    assert [a.status for a in store.runs.list_attempts(run.id)] == ["RELEASED"]
    assert store.claims.due_runs(NOW + 61)["expired"] == []


def test_a_claim_released_by_its_id_before_it_was_received_undoes_the_claim(store: Store) -> None:
    env = make_env(store)
    run = insert(store, new_run(env))[0]
    claim(store, env, claim_id="clm-1")

    [released] = store.releases.release_runs(env, "w1", claim_ids=["clm-1"], now=NOW + 1)

    assert (released.attempt_count, released.started_at) == (0, None)
    assert store.runs.list_attempts(run.id) == []


def test_closing_a_released_attempt_ends_only_that_one(store: Store) -> None:
    env = make_env(store)
    run = insert(store, new_run(env))[0]
    [taken] = claim(store, env)
    store.releases.release_runs(env, "w1", [held(taken)], now=NOW + 1)

    store.releases.close_released_attempt(run.id, 1, "CANCELED", NOW + 2)
    store.releases.close_released_attempt(run.id, 1, "FAILED", NOW + 3)  # no longer open: unchanged

    [attempt] = store.runs.list_attempts(run.id)
    assert (attempt.status, attempt.finished_at) == ("CANCELED", NOW + 2)


# -- heartbeats of many runs --------------------------------------------------------------------


def test_a_heartbeat_of_more_runs_than_one_statement_takes_extends_those_held(store: Store) -> None:
    env = make_env(store)
    runs = insert(store, *(new_run(env, created_at=NOW - 10 + i) for i in range(3)))
    taken = claim(store, env, limit=2)
    unknown = [(f"run_gone_{i:04d}", 1) for i in range(1200)]
    held_runs = [(r.id, r.attempt_count) for r in taken]
    beat = [*unknown[:700], held_runs[0], *unknown[700:], held_runs[1], (runs[2].id, 1)]

    lost = store.claims.extend_leases("w1", beat, NOW + 500, NOW + 1)

    assert sorted(lost) == sorted([run_id for run_id, _ in unknown] + [runs[2].id])
    assert all(store.runs.get_run(r.id).lease_expires_at == NOW + 500 for r in taken)
    assert sorted(store.claims.runs_not_held("w1", beat)) == sorted(lost)
    assert sorted(store.claims.runs_not_held("w2", held_runs)) == sorted(r.id for r in taken)
    assert store.claims.extend_leases("w1", [(taken[0].id, 2)], NOW + 900, NOW + 2) == [taken[0].id]  # another attempt


def test_a_claim_tried_again_gets_its_runs_with_their_leases_extended(two_stores: list[Store]) -> None:
    one, two = two_stores
    env = make_env(one)
    insert(one, new_run(env))
    [taken] = claim(one, env, claim_id="clm-1")

    [again] = claim(two, env, claim_id="clm-1", now=NOW + 20)  # the worker gets it only now

    assert again.lease_expires_at == NOW + 20 + LEASE == two.runs.get_run(taken.id).lease_expires_at
    assert again.executions == taken.executions and again.attempt_count == taken.attempt_count


def test_claim_ids_are_the_workers_and_unique_per_environment_only(store: Store) -> None:
    first, second = make_env(store, "dev"), make_env(store, "prod")
    insert(store, new_run(first), new_run(second))

    [a] = claim(store, first, claim_id="clm-same")
    [b] = claim(store, second, claim_id="clm-same")

    assert (a.environment_id, b.environment_id) == (first, second)
    assert [r.id for r in store.releases.release_runs(second, "w1", claim_ids=["clm-same"], now=NOW + 1)] == [b.id]
    assert store.runs.get_run(a.id).status == RunStatus.EXECUTING  # the other environment's claim is untouched
    assert claim(store, first, claim_id="clm-same") == [store.runs.get_run(a.id)]
