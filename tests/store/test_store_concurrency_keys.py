"""The store contract, part 3b: concurrency keys. In a queue with a limit each key value gets its own
copy of the limit, keys take turns, and runs without a key share the queue's limit as ever."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from hightide.store import Store
from hightide.store.records import Run
from tests.store.factories import NOW, finish, insert, make_env, new_run, pause_queue
from tests.store.test_store_claims import _claim_concurrently, claim


def _env(store: Store, limit: int | None, *, concurrency_limit: int = 1000) -> str:
    queue = {"name": "mail"} if limit is None else {"name": "mail", "concurrency_limit": limit}
    return make_env(store, concurrency_limit=concurrency_limit, tasks=[{"id": "email", "queue": queue}])


def _keyed(env: str, *keys: str | None, start: float = NOW - 1000) -> list:
    """Runs of queue ``mail`` with ``keys`` in turn, each 10 ms younger than the one before."""
    return [new_run(env, queue="mail", created_at=start + i / 100, concurrency_key=key) for i, key in enumerate(keys)]


def _keys(runs: list[Run]) -> list[str | None]:
    return [run.concurrency_key for run in runs]


def test_each_key_gets_its_own_copy_of_the_queue_limit(store: Store) -> None:
    env = _env(store, 1)
    a1, b1, a2, b2 = insert(store, *_keyed(env, "a", "b", "a", "b"))

    first = claim(store, env, limit=10)
    assert sorted(run.id for run in first) == sorted([a1.id, b1.id])  # a and b at once
    assert claim(store, env, limit=10) == []  # each key is at its limit

    finish(store, first[_keys(first).index("a")])
    assert [run.id for run in claim(store, env, limit=10)] == [a2.id]  # a's slot, not b's
    assert claim(store, env, limit=10) == []
    finish(store, first[_keys(first).index("b")])
    assert [run.id for run in claim(store, env, limit=10)] == [b2.id]


def test_a_keys_limit_holds_across_successive_claims(store: Store) -> None:
    env = _env(store, 2)
    insert(store, *_keyed(env, *["a"] * 5, "b"))

    got = [claim(store, env, limit=1) for _ in range(4)]
    assert [_keys(runs) for runs in got] == [["a"], ["b"], ["a"], []]

    finish(store, got[0][0])
    assert _keys(claim(store, env, limit=5)) == ["a"]
    assert claim(store, env, limit=5) == []


def test_runs_without_a_key_share_the_queue_limit_apart_from_the_keys(store: Store) -> None:
    env = _env(store, 2)
    insert(store, *_keyed(env, None, None, None, "a", "a", "a"))

    first = claim(store, env, limit=10)
    assert Counter(_keys(first)) == {None: 2, "a": 2}
    assert claim(store, env, limit=10) == []

    finish(store, first[_keys(first).index(None)])
    assert _keys(claim(store, env, limit=10)) == [None]


def test_unkeyed_runs_go_by_rank_as_before(store: Store) -> None:
    env = _env(store, 2)
    runs = insert(store, *_keyed(env, *[None] * 5))
    assert [run.id for run in claim(store, env, limit=10)] == [runs[0].id, runs[1].id]
    assert claim(store, env, limit=10) == []


def test_in_a_queue_without_a_limit_keys_change_nothing(store: Store) -> None:
    env = _env(store, None)
    runs = insert(store, *_keyed(env, "a", "a", "a", "b", None))
    assert [run.id for run in claim(store, env, limit=3)] == [run.id for run in runs[:3]]  # by rank
    assert [run.id for run in claim(store, env, limit=10)] == [run.id for run in runs[3:]]


def test_a_key_with_thousands_of_queued_runs_does_not_starve_one_with_one(store: Store) -> None:
    env = _env(store, 100)  # a limit no key reaches here: only turns keep it fair
    insert(store, *_keyed(env, *["big"] * 2000))
    small = insert(store, new_run(env, queue="mail", created_at=NOW - 2, concurrency_key="small"))[0]

    first = claim(store, env, limit=3)
    assert _keys(first) == ["big", "small", "big"]  # small's turn comes before big's second run
    assert small.id == first[1].id

    # Slot by slot, the least busy key goes first: small (1 executing) before big (2), however old.
    later = insert(store, new_run(env, queue="mail", created_at=NOW - 1, concurrency_key="small"))[0]
    assert [run.id for run in claim(store, env, limit=1)] == [later.id]
    assert _keys(claim(store, env, limit=1)) == ["big"]


def test_keys_share_the_claim_in_turns(store: Store) -> None:
    env = _env(store, 10)
    insert(store, *_keyed(env, *["a"] * 20), *_keyed(env, *["b"] * 3, start=NOW - 500), *_keyed(env, "c", start=NOW))
    assert _keys(claim(store, env, limit=6)) == ["a", "b", "c", "a", "b", "a"]


def test_a_full_key_does_not_hide_other_queues(store: Store) -> None:
    tasks = [
        {"id": "email", "queue": {"name": "mail", "concurrency_limit": 1}},
        {"id": "resize", "queue": {"name": "images", "concurrency_limit": 1}},
    ]
    env = make_env(store, tasks=tasks)
    insert(store, *_keyed(env, *["a"] * 50))
    resize = insert(store, new_run(env, "resize", queue="images", created_at=NOW))[0]

    assert _keys(claim(store, env, limit=1)) == ["a"]
    assert [run.id for run in claim(store, env, limit=5)] == [resize.id]
    assert claim(store, env, limit=5) == []


def test_the_environment_limit_still_caps_every_key(store: Store) -> None:
    env = _env(store, 1, concurrency_limit=3)
    insert(store, *_keyed(env, *"abcde" * 2))

    first = claim(store, env, limit=10)
    assert _keys(first) == ["a", "b", "c"]
    assert claim(store, env, limit=10) == []
    finish(store, first[0])
    assert _keys(claim(store, env, limit=10)) == ["d"]  # d and e have waited with nothing executing


def test_a_paused_queue_starts_no_keyed_run(store: Store) -> None:
    env = _env(store, 1)
    pause_queue(store, env, "mail")
    insert(store, *_keyed(env, "a", "b", None))
    assert claim(store, env, limit=10) == []

    store.queues.set_paused(env, "mail", False, NOW)
    assert sorted(_keys(claim(store, env, limit=10)), key=str) == [None, "a", "b"]


def test_an_override_is_each_keys_limit(store: Store) -> None:
    env = _env(store, 1)
    insert(store, *_keyed(env, *"ababab"))
    store.queues.set_limit_override(env, "mail", 2, NOW)
    assert Counter(_keys(claim(store, env, limit=10))) == {"a": 2, "b": 2}
    store.queues.set_limit_override(env, "mail", 0, NOW)
    insert(store, *_keyed(env, "c"))
    assert claim(store, env, limit=10) == []


@pytest.fixture
def two_stores(store: Store, database_url: str, open_stores: Callable[[str], Store]) -> list[Store]:
    return [store, open_stores(database_url)]


def test_concurrent_claimers_respect_each_keys_limit(two_stores: list[Store]) -> None:
    store = two_stores[0]
    env = _env(store, 2)
    insert(store, *_keyed(env, *[f"k{i % 10}" for i in range(100)]))

    per_thread = _claim_concurrently(two_stores, env, threads=4, limit=3)

    claimed = [run for got in per_thread for run in got]
    assert len({run.id for run in claimed}) == len(claimed) == 20
    assert Counter(_keys(claimed)) == {f"k{i}": 2 for i in range(10)}
