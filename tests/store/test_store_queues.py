"""The store contract, queues: what tasks declare, what users set (pause, a limit override), and how
claiming honours both."""

from __future__ import annotations

from collections.abc import Callable

from hightide.store import Store
from hightide.store.changes import Change, ChangeKind
from hightide.store.records import Queue
from tests.store.factories import NOW, insert, make_env, new_run, pause_queue
from tests.store.test_store_changes import Heard
from tests.store.test_store_claims import claim
from tests.support import assert_eventually

TASKS = [
    {"id": "email", "queue": {"name": "task/email"}},
    {"id": "resize", "queue": {"name": "images", "concurrency_limit": 3}},
]


def test_list_queues_gives_each_queue_of_the_environment_by_name(store: Store) -> None:
    env = make_env(store, tasks=TASKS)
    make_env(store, "other")
    pause_queue(store, env, "images")
    assert store.queues.list_queues(env) == [Queue("images", 3, paused=True, paused_at=NOW), Queue("task/email", None)]
    assert store.queues.get_queue(env, "images") == store.queues.list_queues(env)[0]
    assert store.queues.get_queue(env, "nope") is None


def test_an_override_wins_over_the_declared_limit_until_it_is_reset(store: Store) -> None:
    env = make_env(store, tasks=TASKS)
    insert(store, *(new_run(env, "resize", queue="images") for _ in range(6)))

    raised = store.queues.set_limit_override(env, "images", 5, NOW + 1)
    assert (raised.limit, raised.concurrency_limit, raised.overridden_at) == (5, 3, NOW + 1)
    assert len(claim(store, env, tasks=("resize",))) == 5

    reset = store.queues.set_limit_override(env, "images", None, NOW + 2)
    assert (reset.limit, reset.concurrency_limit_override, reset.overridden_at) == (3, None, None)
    assert claim(store, env, tasks=("resize",)) == []  # 5 execute, over the declared 3


def test_an_override_of_zero_starts_nothing(store: Store) -> None:
    env = make_env(store, tasks=TASKS)
    insert(store, new_run(env, "email"))
    store.queues.set_limit_override(env, "task/email", 0, NOW)
    assert claim(store, env) == []


def test_a_new_version_keeps_a_pause_and_an_override_and_takes_its_declared_limit(store: Store) -> None:
    env = make_env(store, tasks=TASKS)
    store.queues.set_paused(env, "task/email", True, NOW)
    store.queues.set_limit_override(env, "images", 7, NOW)

    newer = [
        {"id": "email", "queue": {"name": "task/email"}},
        {"id": "resize", "queue": {"name": "images", "concurrency_limit": 4}},
    ]
    store.environments.register_version(env, "20270116", {"tasks": newer}, NOW + 60)

    email, images = store.queues.get_queue(env, "task/email"), store.queues.get_queue(env, "images")
    assert email is not None and images is not None
    assert (email.paused, email.paused_at) == (True, NOW)
    assert (images.concurrency_limit, images.concurrency_limit_override, images.limit) == (4, 7, 7)


def test_a_queue_only_runs_name_can_be_paused_and_resumed(store: Store) -> None:
    env = make_env(store, tasks=TASKS)
    insert(store, new_run(env, "email", queue="adhoc"))
    paused = store.queues.set_paused(env, "adhoc", True, NOW)
    assert paused == Queue("adhoc", None, paused=True, paused_at=NOW)
    assert claim(store, env) == []

    resumed = store.queues.set_paused(env, "adhoc", False, NOW + 1)
    assert (resumed.paused, resumed.paused_at) == (False, None)
    assert [run.queue for run in claim(store, env)] == ["adhoc"]


def test_setting_a_queue_wakes_claimers_on_every_server(store: Store, open_stores: Callable[[str], Store]) -> None:
    env = make_env(store, tasks=TASKS)
    other = (
        open_stores(store.engine.url.render_as_string(hide_password=False)) if store.dialect == "postgresql" else store
    )
    heard = Heard()
    other.add_listener(heard)
    store.queues.set_paused(env, "images", True, NOW)
    store.queues.set_limit_override(env, "images", 2, NOW)
    assert_eventually(lambda: heard.changes.count(Change(env, kind=ChangeKind.QUEUE)) == 2)


def test_pausing_a_paused_queue_keeps_the_time_it_was_paused_at(store: Store) -> None:
    env = make_env(store, tasks=TASKS)
    store.queues.set_paused(env, "images", True, NOW)
    again = store.queues.set_paused(env, "images", True, NOW + 30)
    assert (again.paused, again.paused_at) == (True, NOW)
    store.queues.set_paused(env, "images", False, NOW + 40)
    assert store.queues.set_paused(env, "images", True, NOW + 50).paused_at == NOW + 50
