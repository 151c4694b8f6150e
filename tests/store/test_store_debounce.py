"""The store contract, debounce: a trigger with the key of a still-delayed run pushes that run back
(and, trailing, gives it its payload) instead of inserting another; once the run is queued the key
is free; two servers racing insert one run."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from hightide.core.options import Debounce
from hightide.core.states import RunStatus
from hightide.store import Store
from hightide.store.records import NewRun
from tests.store.factories import NOW, make_env, new_run


def _debounced(env: str, payload: object, now: float, debounce: Debounce, task: str = "email") -> NewRun:
    until = now + debounce.delay
    run = new_run(env, task, created_at=now, status=RunStatus.DELAYED, available_at=until, payload=payload)
    return replace(run, delay_until=until, debounce=debounce)


def test_a_second_trigger_pushes_the_delayed_run_back_and_trailing_takes_its_payload(store: Store) -> None:
    env = make_env(store)
    trailing = Debounce("user-42", 5.0, "trailing")
    [(first, cached)] = store.runs.insert_runs([_debounced(env, {"n": 1}, NOW, trailing)], NOW)
    assert not cached and first.status == RunStatus.DELAYED
    [(again, cached)] = store.runs.insert_runs([_debounced(env, {"n": 2}, NOW + 3, trailing)], NOW + 3)
    assert cached and again.id == first.id
    assert (again.delay_until, again.available_at, again.payload) == (NOW + 8, NOW + 8, {"n": 2})

    leading = Debounce("user-42", 5.0, "leading")
    [(kept, _)] = store.runs.insert_runs([_debounced(env, {"n": 3}, NOW + 4, leading)], NOW + 4)
    assert (kept.id, kept.delay_until, kept.payload) == (first.id, NOW + 9, {"n": 2})
    other_task = store.runs.insert_runs([_debounced(env, {}, NOW + 4, leading, task="resize")], NOW + 4)
    assert other_task[0][1] is False  # a key is per task


def test_max_delay_caps_how_far_a_run_is_pushed(store: Store) -> None:
    env = make_env(store)
    capped = Debounce("k", 5.0, "leading", max_delay=8.0)
    [(first, _)] = store.runs.insert_runs([_debounced(env, {}, NOW, capped)], NOW)
    for t in (3.0, 6.0, 9.0):
        [(run, _)] = store.runs.insert_runs([_debounced(env, {}, NOW + t, capped)], NOW + t)
    assert run.id == first.id and run.delay_until == NOW + 8


def test_once_the_run_is_queued_the_key_makes_a_new_run(store: Store) -> None:
    env = make_env(store)
    debounce = Debounce("k", 5.0)
    [(first, _)] = store.runs.insert_runs([_debounced(env, {}, NOW, debounce)], NOW)
    queued = store.runs.update_run(
        first.id, expect_status="DELAYED", expect_attempt=None, values={"status": "QUEUED"}, now=NOW + 5
    )
    assert queued is not None
    [(second, cached)] = store.runs.insert_runs([_debounced(env, {}, NOW + 6, debounce)], NOW + 6)
    assert not cached and second.id != first.id


def test_two_servers_racing_on_one_key_insert_one_run(store: Store, open_stores: Callable[[str], Store]) -> None:
    env = make_env(store)
    url = store.engine.url.render_as_string(hide_password=False)
    stores = [store, open_stores(url) if store.dialect == "postgresql" else store]
    debounce = Debounce("race", 60.0)
    with ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(
                lambda i: stores[i % 2].runs.insert_runs([_debounced(env, {"i": i}, NOW, debounce)], NOW)[0], range(16)
            )
        )
    assert len({run.id for run, _ in results}) == 1
    assert sum(1 for _, cached in results if not cached) == 1
