"""The store contract, part 3c: rate limits. A rate-limited queue starts at most ``limit`` runs in any
window of ``period`` (a sliding window over the starts), per concurrency key when it says so; runs over
the rate stay QUEUED and start as the window frees, and the scheduler is told when that is."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from hightide.core.states import RunStatus
from hightide.store import Store
from hightide.store.records import Run
from hightide.store.schema import queue_starts
from tests.store.factories import NOW, finish, insert, make_env, new_run
from tests.store.test_store_claims import _claim_concurrently, claim


def _env(store: Store, rate: dict[str, Any], *, concurrency_limit: int | None = None) -> str:
    queue: dict[str, Any] = {"name": "openai", "rate_limit": rate}
    if concurrency_limit is not None:
        queue["concurrency_limit"] = concurrency_limit
    return make_env(store, tasks=[{"id": "email", "queue": queue}, {"id": "resize", "queue": {"name": "free"}}])


def _runs(env: str, *keys: str | None, task: str = "email", start: float = NOW - 1000) -> list:
    queue = "openai" if task == "email" else "free"
    return [
        new_run(env, task, queue=queue, created_at=start + i / 100, concurrency_key=key) for i, key in enumerate(keys)
    ]


def _done(store: Store, runs: list[Run], now: float) -> None:
    for run in runs:
        finish(store, run, now)


def test_at_most_limit_runs_start_in_any_window(store: Store) -> None:
    env = _env(store, {"limit": 3, "period": 60})
    runs = insert(store, *_runs(env, *[None] * 10))

    first = claim(store, env, limit=10, now=NOW)
    assert len(first) == 3
    _done(store, first, NOW + 1)  # finishing frees no start: the window counts starts, not runs
    assert claim(store, env, limit=10, now=NOW + 30) == []
    assert claim(store, env, limit=10, now=NOW + 59.9) == []
    again = claim(store, env, limit=10, now=NOW + 60)  # the first starts left the window
    assert len(again) == 3
    queued = [run for run in store.runs.get_runs([r.id for r in runs], env).values() if run.status == RunStatus.QUEUED]
    assert len(queued) == 4  # over the rate: still queued, none dropped


def test_the_window_slides_with_each_start(store: Store) -> None:
    env = _env(store, {"limit": 2, "period": 10})
    insert(store, *_runs(env, *[None] * 6))

    assert len(claim(store, env, limit=1, now=NOW)) == 1
    assert len(claim(store, env, limit=5, now=NOW + 4)) == 1  # one start left in (NOW - 10, NOW + 4]
    assert claim(store, env, limit=5, now=NOW + 9) == []
    assert len(claim(store, env, limit=5, now=NOW + 10)) == 1  # the start at NOW left; NOW + 4's did not
    assert claim(store, env, limit=5, now=NOW + 13) == []
    assert len(claim(store, env, limit=5, now=NOW + 14)) == 1


def test_a_full_queue_does_not_hold_back_other_queues(store: Store) -> None:
    env = _env(store, {"limit": 1, "period": 60})
    limited = insert(store, *_runs(env, None, None, None))
    others = insert(store, *_runs(env, None, None, task="resize", start=NOW - 10))

    got = claim(store, env, limit=10)
    assert sorted(run.id for run in got) == sorted([limited[0].id, *(r.id for r in others)])


def test_per_key_each_key_value_gets_its_own_window(store: Store) -> None:
    env = _env(store, {"limit": 2, "period": 60, "per": "concurrency_key"})
    insert(store, *_runs(env, *["a"] * 5, *["b"] * 5, None, None, None))

    got = claim(store, env, limit=20)
    assert Counter(run.concurrency_key for run in got) == {"a": 2, "b": 2, None: 2}
    assert claim(store, env, limit=20, now=NOW + 59) == []
    later = claim(store, env, limit=20, now=NOW + 60)
    assert Counter(run.concurrency_key for run in later) == {"a": 2, "b": 2, None: 1}


def test_per_key_a_busy_key_does_not_starve_a_quiet_one(store: Store) -> None:
    """One key's thousands of runs ahead of another's one: the other starts in the first claim."""
    env = _env(store, {"limit": 5, "period": 60, "per": "concurrency_key"})
    insert(store, *_runs(env, *["big"] * 300))
    [quiet] = insert(store, *_runs(env, "quiet", start=NOW - 1))

    got = claim(store, env, limit=3)
    assert quiet.id in {run.id for run in got}
    more = claim(store, env, limit=100)
    assert Counter(run.concurrency_key for run in got + more) == {"big": 5, "quiet": 1}


def test_a_rate_and_a_concurrency_limit_hold_together(store: Store) -> None:
    env = _env(store, {"limit": 4, "period": 60, "per": "concurrency_key"}, concurrency_limit=1)
    insert(store, *_runs(env, *["a"] * 6))

    starts = 0
    for second in range(10):  # each run finishes a second after it started
        got = claim(store, env, limit=10, now=NOW + second)
        assert len(got) <= 1  # the concurrency limit of 1 per key
        _done(store, got, NOW + second + 0.5)
        starts += len(got)
    assert starts == 4  # and the rate of 4 a minute


def test_retries_count_as_starts(store: Store) -> None:
    env = _env(store, {"limit": 2, "period": 60})
    [run] = insert(store, *_runs(env, None))
    [first] = claim(store, env, now=NOW)
    retried = store.runs.update_run(
        first.id,
        expect_status="EXECUTING",
        expect_attempt=1,
        values={"status": RunStatus.QUEUED.value, "lease_expires_at": None},
        now=NOW + 1,
    )
    assert retried is not None
    assert [r.id for r in claim(store, env, now=NOW + 2)] == [run.id]
    insert(store, *_runs(env, None))
    assert claim(store, env, now=NOW + 3) == []  # two starts already in the window


def test_the_scheduler_is_told_when_a_full_window_frees(store: Store) -> None:
    env = _env(store, {"limit": 2, "period": 60})
    insert(store, *_runs(env, *[None] * 5))
    _done(store, claim(store, env, now=NOW), NOW + 0.5)  # (no lease left to run out before)
    assert store.claims.next_due_time(NOW + 1) == NOW + 60
    woken: list[Any] = []
    store.add_listener(woken.extend)
    try:
        store.claims.announce_ready(NOW + 59, NOW + 60)
    finally:
        store.remove_listener(woken.extend)
    assert [change.environment_id for change in woken] == [env]
    _done(store, claim(store, env, now=NOW + 60), NOW + 60.5)
    assert store.claims.next_due_time(NOW + 61) == NOW + 120


def test_a_new_version_changes_the_rate_and_keeps_the_window(store: Store) -> None:
    env = _env(store, {"limit": 2, "period": 60})
    insert(store, *_runs(env, *[None] * 10))
    assert len(claim(store, env, now=NOW)) == 2
    tasks = [{"id": "email", "queue": {"name": "openai", "rate_limit": {"limit": 5, "period": 60}}}]
    store.environments.register_version(env, "20270116", {"tasks": tasks}, NOW + 1)
    assert len(claim(store, env, now=NOW + 2)) == 3  # five in the window, two of them before
    tasks = [{"id": "email", "queue": {"name": "openai"}}]
    store.environments.register_version(env, "20270117", {"tasks": tasks}, NOW + 3)
    assert len(claim(store, env, now=NOW + 4)) == 5  # no rate limit any more


def test_concurrent_claimers_on_two_stores_never_exceed_the_rate(
    store: Store, database_url: str, open_stores: Callable[[str], Store]
) -> None:
    env = _env(store, {"limit": 25, "period": 3600})
    insert(store, *_runs(env, *[None] * 200))
    got = _claim_concurrently([store, open_stores(database_url)], env, threads=6, limit=3)
    assert sum(len(runs) for runs in got) == 25


def test_starts_that_left_their_window_are_deleted(store: Store) -> None:
    env = _env(store, {"limit": 3, "period": 10, "per": "concurrency_key"})
    insert(store, *_runs(env, *["a", "b"] * 6))
    assert len(claim(store, env, limit=4, now=NOW)) == 4
    assert len(claim(store, env, limit=4, now=NOW + 30)) == 4  # the first four left their windows

    with store.seam.engine.connect() as conn:
        kept = conn.execute(select(queue_starts.c.started_at)).scalars().all()
    assert kept == [NOW + 30] * 4


def test_a_claim_for_other_tasks_keeps_the_time_a_keys_window_frees(store: Store) -> None:
    env = _env(store, {"limit": 1, "period": 60, "per": "concurrency_key"})
    insert(store, *_runs(env, "a", "a"))
    _done(store, claim(store, env, ("email",), now=NOW), NOW + 0.5)
    assert store.claims.next_due_time(NOW + 1) == NOW + 60  # key a's window frees then
    assert claim(store, env, ("resize",), now=NOW + 2) == []  # a claim that never looks at key a
    assert store.claims.next_due_time(NOW + 3) == NOW + 60
