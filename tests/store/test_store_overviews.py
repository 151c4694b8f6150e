"""The store's reads behind the dashboard's overviews: the current version and its tasks, queues,
runs counted by task and status (bounded) and by queue, and the runs waiting on tokens."""

from __future__ import annotations

from hightide.core.states import RunStatus
from hightide.store import Store
from hightide.store.records import JournalEntry, Suspension
from tests.store.factories import NOW, finish, insert, make_env, new_run, new_waitpoint, start_run


def test_the_current_version_is_the_newest_and_its_tasks_are_the_current_ones(store: Store) -> None:
    env = make_env(store)  # version 1: email, resize
    make_env(store, "other", tasks=[{"id": "x", "queue": {"name": "q"}}])  # registered later, elsewhere
    first = store.environments.current_version(env)
    assert first is not None and first.version == "20270115.1"
    assert [t.task_id for t in store.environments.tasks_of_version(env, first.id)] == ["email", "resize"]

    tasks = [{"id": "resize", "queue": {"name": "images", "concurrency_limit": 2}, "machine": "large-1x"}]
    second = store.environments.register_version(env, "20270115", {"tasks": tasks}, NOW + 1)
    current = store.environments.current_version(env)
    assert current is not None and current.id == second.id and current.manifest == {"tasks": tasks}
    [resize] = store.environments.tasks_of_version(env, second.id)  # email is not in it
    assert (resize.task_id, resize.queue, resize.config["machine"]) == ("resize", "images", "large-1x")
    assert store.environments.tasks_of_version(env, first.id) == [store.environments.get_task(env, "email")]

    fresh = store.environments.ensure_environment(
        store.environments.ensure_project("acme", NOW), "empty", "development", 5, NOW
    )
    assert store.environments.current_version(fresh) is None


def test_count_by_task_counts_the_newest_runs_of_the_period_by_status(store: Store) -> None:
    env = make_env(store)
    other = make_env(store, "other")
    insert(store, new_run(env, created_at=NOW - 100), new_run(env, created_at=NOW - 90))
    insert(store, new_run(env, "resize", created_at=NOW - 80, status=RunStatus.DELAYED))
    insert(store, new_run(env, created_at=NOW - 10_000))  # before the period
    insert(store, new_run(other, created_at=NOW - 50))  # another environment
    finish(store, start_run(store, env, now=NOW - 70), now=NOW - 60)

    counts, total = store.runs.count_by_task(env, NOW - 1000, limit=100)
    assert counts == {"email": {"QUEUED": 2, "COMPLETED": 1}, "resize": {"DELAYED": 1}}
    assert total == 4

    # At most `limit` runs, the newest: the completed one (NOW - 70) and the delayed one (NOW - 80).
    counts, total = store.runs.count_by_task(env, NOW - 1000, limit=2)
    assert counts == {"email": {"COMPLETED": 1}, "resize": {"DELAYED": 1}} and total == 2
    assert store.runs.count_by_task(env, NOW + 1, limit=100) == ({}, 0)


def test_count_active_by_queue_counts_queued_and_executing_runs_only(store: Store) -> None:
    env = make_env(store)
    insert(store, new_run(env), new_run(env), new_run(env, "resize", queue="shared"))
    insert(store, new_run(env, status=RunStatus.DELAYED))
    start_run(store, env, "resize", queue="shared")
    finish(store, start_run(store, env))
    insert(store, new_run(make_env(store, "other")))
    assert store.runs.count_active_by_queue(env) == {
        "task/email": {"QUEUED": 2},
        "shared": {"QUEUED": 1, "EXECUTING": 1},
    }


def test_waiting_runs_of_gives_the_runs_suspended_on_each_token(store: Store) -> None:
    env = make_env(store)
    tokens = [store.waitpoints.create_waitpoint(new_waitpoint(env), NOW)[0] for _ in range(3)]
    waiting: dict[str, list[str]] = {}
    for token, count in zip(tokens[:2], (2, 1), strict=True):
        for _ in range(count):
            run = start_run(store, env)
            store.waitpoints.record_entry(
                JournalEntry(run.id, "0", "wait_for_token", token.id, waitpoint_ids=[token.id]), 1, now=NOW
            )
            assert run.worker_id is not None
            store.waitpoints.suspend_runs([Suspension(run.id, 1, run.worker_id, run.executions, ("0",))], NOW + 1)
            waiting.setdefault(token.id, []).append(run.id)
    found = store.waitpoints.waiting_runs_of([t.id for t in tokens])
    assert found == {token_id: sorted(ids) for token_id, ids in waiting.items()}  # the third: none waits
    assert store.waitpoints.waiting_runs_of([]) == {}


def test_latest_of_task_finds_the_newest_runs_of_a_task_recent_or_not(store: Store) -> None:
    env = make_env(store)
    old = insert(store, *[new_run(env, "resize", created_at=NOW - 1000 + i) for i in range(3)])
    recent_email = insert(store, *[new_run(env, created_at=NOW - 100 + i) for i in range(4)])
    recent_resize = insert(store, new_run(env, "resize", created_at=NOW - 50))
    insert(store, new_run(make_env(store, "other"), "resize", created_at=NOW))

    def ids(task_id: str, limit: int) -> list[str]:
        return [run.id for run in store.runs.latest_of_task(env, task_id, limit)]

    newest_first = [recent_resize[0].id] + [r.id for r in reversed(old)]
    assert ids("resize", 10) == newest_first  # recent or not, and not another environment's
    assert ids("resize", 2) == newest_first[:2]
    assert ids("email", 3) == [r.id for r in reversed(recent_email)][:3]
    assert ids("nothing", 10) == []
    assert store.runs.latest_of_task(env, "email", 1)[0] == store.runs.get_run(recent_email[-1].id)
