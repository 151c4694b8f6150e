"""The store contract, part 3: claiming (order, limits, concurrent claimers), leases and the
runs whose time has come."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from hightide.core.states import RunStatus
from hightide.store import Store
from hightide.store.records import Run
from tests.store.factories import NOW, finish, insert, make_env, new_run, pause_queue

LEASE = 30.0


def claim(
    store: Store,
    env: str,
    tasks: tuple[str, ...] = ("email", "resize"),
    limit: int = 10,
    *,
    worker_id: str = "w1",
    now: float = NOW,
) -> list[Run]:
    return store.claims.claim_runs(
        env, list(tasks), worker_id=worker_id, version="20270115.1", limit=limit, lease_seconds=LEASE, now=now
    )


def test_a_claim_starts_an_attempt(store: Store) -> None:
    env = make_env(store)
    run = insert(store, new_run(env, created_at=NOW - 10))[0]

    [claimed] = claim(store, env, worker_id="w7", now=NOW)

    assert claimed == store.runs.get_run(run.id)
    assert (claimed.id, claimed.status, claimed.attempt_count, claimed.worker_id, claimed.version) == (
        run.id,
        RunStatus.EXECUTING,
        1,
        "w7",
        "20270115.1",
    )
    assert (claimed.lease_expires_at, claimed.started_at, claimed.updated_at) == (NOW + LEASE, NOW, NOW)
    [attempt] = store.runs.list_attempts(run.id)
    assert (attempt.number, attempt.status, attempt.worker_id, attempt.version, attempt.started_at) == (
        1,
        "EXECUTING",
        "w7",
        "20270115.1",
        NOW,
    )
    assert claim(store, env) == []


def test_a_second_attempt_keeps_the_first_start_time(store: Store) -> None:
    env = make_env(store)
    run = insert(store, new_run(env))[0]
    claim(store, env, now=NOW)
    retried = store.runs.update_run(
        run.id,
        expect_status="EXECUTING",
        expect_attempt=1,
        values={"status": "QUEUED", "available_at": NOW + 5, "worker_id": None},
        attempt_values={"status": "FAILED", "finished_at": NOW + 1},
        now=NOW + 1,
    )
    assert retried is not None
    assert claim(store, env, now=NOW + 4) == []  # the backoff has not ended

    [again] = claim(store, env, worker_id="w2", now=NOW + 5)
    assert (again.attempt_count, again.worker_id, again.started_at) == (2, "w2", NOW)
    assert [(a.number, a.status, a.worker_id) for a in store.runs.list_attempts(run.id)] == [
        (1, "FAILED", "w1"),
        (2, "EXECUTING", "w2"),
    ]


def test_claims_go_by_priority_then_age(store: Store) -> None:
    env = make_env(store)
    runs = insert(
        store,
        new_run(env, created_at=NOW - 3),  # rank NOW-3
        new_run(env, created_at=NOW - 1, priority=10.0),  # rank NOW-11: first
        new_run(env, created_at=NOW - 5),  # rank NOW-5
        new_run(env, created_at=NOW - 2),  # rank NOW-2
        new_run(env, created_at=NOW - 1),  # rank NOW-1: last
    )
    older_twin, younger_twin = (
        new_run(env, created_at=NOW - 4.5, available_at=NOW - 4),
        new_run(env, created_at=NOW - 4.2, available_at=NOW - 4),
    )
    insert(store, younger_twin, older_twin)  # the same rank: the older one goes first

    claimed = [run.id for run in claim(store, env, limit=3)]
    claimed += [run.id for run in claim(store, env, limit=10)]

    assert claimed == [runs[1].id, runs[2].id, older_twin.id, younger_twin.id, runs[0].id, runs[3].id, runs[4].id]


def test_claims_wait_for_available_at_and_skip_delayed_runs(store: Store) -> None:
    env = make_env(store)
    later = insert(store, new_run(env, available_at=NOW + 60))[0]
    insert(store, new_run(env, status=RunStatus.DELAYED, delay_until=NOW - 60, available_at=NOW - 60))
    assert claim(store, env, now=NOW) == []
    assert [run.id for run in claim(store, env, now=NOW + 60)] == [later.id]


def test_claims_take_only_the_given_tasks_and_environment(store: Store) -> None:
    env = make_env(store)
    prod = make_env(store, "prod")
    email, resize = insert(store, new_run(env, "email"), new_run(env, "resize"))
    insert(store, new_run(prod, "email"))

    assert claim(store, env, tasks=()) == []
    assert claim(store, env, limit=0) == []
    assert [run.id for run in claim(store, env, tasks=("resize",))] == [resize.id]
    assert [run.id for run in claim(store, env, tasks=("email", "unknown"))] == [email.id]
    assert claim(store, env) == []


def test_a_queue_concurrency_limit_holds(store: Store) -> None:
    env = make_env(store, tasks=[{"id": "email", "queue": {"name": "mail", "concurrency_limit": 2}}])
    insert(store, *(new_run(env, queue="mail", created_at=NOW - 10 + i) for i in range(5)))

    first = claim(store, env, limit=10)
    assert len(first) == 2
    assert claim(store, env, limit=10) == []

    finish(store, first[0])
    assert len(claim(store, env, limit=10)) == 1
    assert claim(store, env, limit=10) == []


def test_the_newest_version_sets_the_queue_limit(store: Store) -> None:
    env = make_env(store, tasks=[{"id": "email", "queue": {"name": "mail", "concurrency_limit": 1}}])
    store.environments.register_version(
        env, "20270115", {"tasks": [{"id": "email", "queue": {"name": "mail", "concurrency_limit": 3}}]}, NOW
    )
    insert(store, *(new_run(env, queue="mail") for _ in range(5)))
    assert len(claim(store, env)) == 3


def test_a_queue_at_zero_or_paused_gets_nothing_but_others_still_do(store: Store) -> None:
    tasks = [
        {"id": "email", "queue": {"name": "mail"}},
        {"id": "resize", "queue": {"name": "images", "concurrency_limit": 0}},
        {"id": "report", "queue": {"name": "reports"}},
    ]
    env = make_env(store, tasks=tasks)
    pause_queue(store, env, "mail")
    # Many older runs in the blocked queues must not hide the one run that can go.
    insert(store, *(new_run(env, "email", queue="mail", created_at=NOW - 100 + i) for i in range(20)))
    insert(store, *(new_run(env, "resize", queue="images", created_at=NOW - 100 + i) for i in range(20)))
    report = insert(store, new_run(env, "report", queue="reports", created_at=NOW))[0]

    assert [run.id for run in claim(store, env, tasks=("email", "resize", "report"), limit=1)] == [report.id]
    assert claim(store, env, tasks=("email", "resize", "report")) == []


def test_a_full_queue_does_not_starve_the_next(store: Store) -> None:
    tasks = [
        {"id": "email", "queue": {"name": "mail", "concurrency_limit": 1}},
        {"id": "resize", "queue": {"name": "images"}},
    ]
    env = make_env(store, tasks=tasks)
    insert(store, *(new_run(env, "email", queue="mail", created_at=NOW - 100 + i) for i in range(20)))
    resize = insert(store, new_run(env, "resize", queue="images", created_at=NOW))[0]

    assert [run.task_id for run in claim(store, env, limit=1)] == ["email"]
    assert [run.id for run in claim(store, env, limit=1)] == [resize.id]


def test_the_environment_concurrency_limit_holds_across_queues(store: Store) -> None:
    env = make_env(store, concurrency_limit=3)
    insert(store, *(new_run(env, task, created_at=NOW - i) for i in range(4) for task in ("email", "resize")))

    running = claim(store, env, tasks=("email",), limit=2)
    assert len(running) == 2
    assert len(claim(store, env, tasks=("resize",), limit=10)) == 1
    assert claim(store, env, limit=10) == []

    finish(store, running[0])
    assert len(claim(store, env, limit=10)) == 1
    store.environments.set_environment_concurrency(env, 5)
    assert len(claim(store, env, limit=10)) == 2


def _claim_concurrently(stores: list[Store], env: str, threads: int, limit: int) -> list[list[Run]]:
    """Claim until nothing is left, from ``threads`` threads spread over ``stores`` and started together."""
    start = threading.Barrier(threads)

    def claimer(index: int) -> list[Run]:
        store = stores[index % len(stores)]
        start.wait()
        got: list[Run] = []
        while True:
            batch = claim(store, env, limit=limit, worker_id=f"w{index}")
            got += batch
            if not batch:
                return got

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(claimer, range(threads)))


@pytest.fixture
def two_stores(store: Store, database_url: str, open_stores: Callable[[str], Store]) -> list[Store]:
    """The test's store and a second one on the same database, as two servers would have."""
    return [store, open_stores(database_url)]


def test_concurrent_claimers_never_share_a_run(two_stores: list[Store]) -> None:
    store = two_stores[0]
    env = make_env(store)
    runs = insert(store, *(new_run(env, "email" if i % 2 else "resize", created_at=NOW - i) for i in range(200)))

    per_thread = _claim_concurrently(two_stores, env, threads=4, limit=7)

    claimed = [run.id for got in per_thread for run in got]
    assert len(claimed) == len(set(claimed)) == 200
    assert set(claimed) == {run.id for run in runs}
    for index, got in enumerate(per_thread):
        assert {run.worker_id for run in got} <= {f"w{index}"}
    stored = [store.runs.get_run(run.id) for run in runs]
    assert all(run is not None and (run.status, run.attempt_count) == (RunStatus.EXECUTING, 1) for run in stored)
    assert all(len(store.runs.list_attempts(run.id)) == 1 for run in runs[::10])


def test_concurrent_claimers_respect_the_environment_limit(two_stores: list[Store]) -> None:
    store = two_stores[0]
    env = make_env(store, concurrency_limit=7)
    insert(store, *(new_run(env, created_at=NOW - i) for i in range(50)))

    per_thread = _claim_concurrently(two_stores, env, threads=4, limit=3)

    assert sum(len(got) for got in per_thread) == 7


# -- leases ----------------------------------------------------------------------------------


def test_extend_leases_reports_the_runs_no_longer_held(store: Store) -> None:
    env = make_env(store)
    insert(store, *(new_run(env, created_at=NOW - i) for i in range(3)))
    other, moved_on, held = claim(store, env, worker_id="w1")  # the oldest first
    finish(store, moved_on)

    lost = store.claims.extend_leases(
        "w1",
        [(held.id, 1), (moved_on.id, 1), (other.id, 2), ("run_missing", 1)],
        lease_until=NOW + 100,
        now=NOW + 10,
    )
    assert sorted(lost) == sorted([moved_on.id, other.id, "run_missing"])
    after = store.runs.get_run(held.id)
    assert after is not None and after.lease_expires_at == NOW + 100
    untouched = store.runs.get_run(other.id)
    assert untouched is not None and untouched.lease_expires_at == NOW + LEASE

    assert store.claims.extend_leases("w2", [(held.id, 1)], lease_until=NOW + 500, now=NOW + 10) == [held.id]
    after = store.runs.get_run(held.id)
    assert after is not None and after.lease_expires_at == NOW + 100
    assert store.claims.extend_leases("w1", [], lease_until=NOW + 500, now=NOW) == []


def test_runs_not_held_reads_without_extending(store: Store) -> None:
    env = make_env(store)
    insert(store, new_run(env, created_at=NOW - 1), new_run(env))
    held, moved_on = claim(store, env, worker_id="w1")
    finish(store, moved_on)

    assert store.claims.runs_not_held("w1", [(held.id, 1), (moved_on.id, 1)]) == [moved_on.id]
    assert store.claims.runs_not_held("w1", [(held.id, 2)]) == [held.id]
    assert store.claims.runs_not_held("w2", [(held.id, 1)]) == [held.id]
    assert store.claims.runs_not_held("w1", [("run_missing", 1)]) == ["run_missing"]
    assert store.claims.runs_not_held("w1", []) == []
    after = store.runs.get_run(held.id)
    assert after is not None and after.lease_expires_at == NOW + LEASE


# -- runs whose time has come ----------------------------------------------------------------


def _due(store: Store, now: float) -> dict[str, list[str]]:
    return {kind: [run.id for run in runs] for kind, runs in store.claims.due_runs(now).items()}


def test_due_runs_finds_delays_ttls_and_lapsed_leases(store: Store) -> None:
    env = make_env(store)
    delayed, doomed, delayed_doomed, executing, plain = insert(
        store,
        new_run(env, status=RunStatus.DELAYED, delay_until=NOW + 50, available_at=NOW + 50),
        new_run(env, ttl_expires_at=NOW + 20, available_at=NOW + 1000),
        new_run(env, status=RunStatus.DELAYED, available_at=NOW + 500, ttl_expires_at=NOW + 40),
        new_run(env, "resize", created_at=NOW - 1),
        new_run(env, "resize"),
    )
    claim(store, env, tasks=("resize",), limit=1, now=NOW)  # `executing`, lease until NOW + 30

    assert _due(store, NOW) == {"delayed": [], "expired": [], "lease_expired": []}
    assert _due(store, NOW + 20) == {"delayed": [], "expired": [doomed.id], "lease_expired": []}
    assert _due(store, NOW + 30) == {"delayed": [], "expired": [doomed.id], "lease_expired": [executing.id]}
    due = _due(store, NOW + 50)
    assert (due["delayed"], due["expired"]) == ([delayed.id], [doomed.id])
    assert plain.id not in str(due)
    # A delayed run's ttl has not started (it counts from when the run is queued): past its
    # ttl_expires_at it is not expired, and once its delay ends it is due to be queued.
    assert delayed_doomed.id not in str(due)
    assert sorted(_due(store, NOW + 500)["delayed"]) == sorted([delayed.id, delayed_doomed.id])
    assert len(store.claims.due_runs(NOW + 500, limit=1)["delayed"]) == 1


def test_a_started_run_does_not_expire(store: Store) -> None:
    env = make_env(store)
    run = insert(store, new_run(env, ttl_expires_at=NOW + 20))[0]
    claim(store, env, now=NOW)
    store.runs.update_run(
        run.id,
        expect_status="EXECUTING",
        expect_attempt=1,
        values={"status": "QUEUED", "available_at": NOW + 100},
        now=NOW,
    )
    assert _due(store, NOW + 50)["expired"] == []


def test_next_due_time_is_the_earliest_future_event(store: Store) -> None:
    env = make_env(store)
    assert store.claims.next_due_time(NOW) is None
    insert(store, new_run(env, "resize"))  # ready now: nothing to wait for
    assert store.claims.next_due_time(NOW) is None

    insert(store, new_run(env, status=RunStatus.DELAYED, delay_until=NOW + 50, available_at=NOW + 50))
    assert store.claims.next_due_time(NOW) == NOW + 50
    # A delayed run's ttl starts when it is queued: what is due first is its delay ending.
    insert(
        store,
        new_run(env, status=RunStatus.DELAYED, delay_until=NOW + 60, available_at=NOW + 60, ttl_expires_at=NOW + 45),
    )
    assert store.claims.next_due_time(NOW) == NOW + 50
    insert(store, new_run(env, available_at=NOW + 40))  # a retry backoff that ends later
    assert store.claims.next_due_time(NOW) == NOW + 40
    insert(store, new_run(env, status=RunStatus.PENDING_VERSION, ttl_expires_at=NOW + 35))
    assert store.claims.next_due_time(NOW) == NOW + 35
    insert(store, new_run(env, "resize", ttl_expires_at=NOW + 31, created_at=NOW - 1))
    assert store.claims.next_due_time(NOW) == NOW + 31
    claim(store, env, tasks=("resize",), limit=1, now=NOW)  # its ttl no longer counts; its lease does
    assert store.claims.next_due_time(NOW) == NOW + LEASE
