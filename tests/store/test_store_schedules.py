"""The store contract, schedules: create (or update in place by deduplication key), list, change,
the declarative ones a version syncs, and firing each tick exactly once, also with two servers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from hightide.core.ids import new_id
from hightide.store import Store
from hightide.store.records import DeclaredSchedule, NewRun, RunFilter, Schedule
from tests.store.factories import NOW, TASKS, make_env, new_run
from tests.store.test_store_claims import two_stores  # noqa: F401 (a fixture)

MINUTE = 60.0


def schedule(env: str, **fields: object) -> Schedule:
    s = Schedule(
        id=new_id("sched", NOW),
        environment_id=env,
        task_id="email",
        cron="* * * * *",
        timezone="UTC",
        external_id=None,
        deduplication_key=None,
        kind="imperative",
        active=True,
        next_tick_at=NOW + MINUTE,
        last_tick_at=None,
        created_at=NOW,
        updated_at=NOW,
    )
    return replace(s, **fields)  # type: ignore[arg-type]


def tick_run(env: str, s: Schedule, tick: float) -> NewRun:
    return new_run(env, s.task_id, idempotency_key=f"schedule:{s.id}:{tick}", idempotency_key_expires_at=tick + 86400)


def test_create_get_and_list_with_a_cursor(store: Store) -> None:
    env = make_env(store)
    other = make_env(store, "prod")
    made = [store.schedules.create(schedule(env, created_at=NOW + i, external_id=f"u{i}"))[0] for i in range(5)]
    store.schedules.create(schedule(other))
    assert store.schedules.get(env, made[0].id) == made[0]
    assert store.schedules.get(other, made[0].id) is None  # another environment's is not found

    page, cursor = store.schedules.list(env, limit=2)
    assert [s.external_id for s in page] == ["u0", "u1"] and cursor is not None
    page2, cursor2 = store.schedules.list(env, limit=2, cursor=cursor)
    page3, cursor3 = store.schedules.list(env, limit=2, cursor=cursor2)
    assert [s.external_id for s in page2 + page3] == ["u2", "u3", "u4"] and cursor3 is None


def test_the_same_deduplication_key_updates_in_place(store: Store) -> None:
    env = make_env(store)
    first, created = store.schedules.create(schedule(env, deduplication_key="user_42-report", external_id="user_42"))
    assert created
    again, created_again = store.schedules.create(
        schedule(
            env, deduplication_key="user_42-report", cron="*/5 * * * *", next_tick_at=NOW + 300, updated_at=NOW + 1
        )
    )
    assert not created_again
    assert (again.id, again.cron, again.next_tick_at, again.external_id, again.updated_at) == (
        first.id,
        "*/5 * * * *",
        NOW + 300,
        None,
        NOW + 1,
    )
    # The same pattern again keeps the next tick it had (no tick is skipped by re-creating).
    same, _ = store.schedules.create(
        schedule(env, deduplication_key="user_42-report", cron="*/5 * * * *", next_tick_at=NOW + 900)
    )
    assert same.next_tick_at == NOW + 300
    assert len(store.schedules.list(env)[0]) == 1
    # Another environment may use the same key: keys are per environment.
    assert store.schedules.create(schedule(make_env(store, "prod"), deduplication_key="user_42-report"))[1]


def test_update_activate_deactivate_and_delete(store: Store) -> None:
    env = make_env(store)
    s, _ = store.schedules.create(schedule(env))
    changed = store.schedules.update(env, s.id, {"cron": "0 9 * * *", "next_tick_at": NOW + 3600}, NOW + 2)
    assert changed is not None and (changed.cron, changed.next_tick_at, changed.updated_at) == (
        "0 9 * * *",
        NOW + 3600,
        NOW + 2,
    )
    off = store.schedules.set_active(env, s.id, False, 0.0, NOW + 3)
    assert off is not None and not off.active and off.next_tick_at == NOW + 3600
    assert store.schedules.due(NOW + 7200) == []  # an inactive schedule is never due
    assert store.schedules.next_tick_time() is None
    on = store.schedules.set_active(env, s.id, True, NOW + 9000, NOW + 4)
    assert on is not None and on.active and on.next_tick_at == NOW + 9000
    again = store.schedules.set_active(env, s.id, True, NOW + 99999, NOW + 5)  # already active: unchanged
    assert again == on
    assert store.schedules.update(env, "sched_nope", {"cron": "* * * * *"}, NOW) is None
    assert store.schedules.delete(env, s.id) is True
    assert store.schedules.delete(env, s.id) is False
    assert store.schedules.get(env, s.id) is None


def test_firing_advances_the_tick_and_inserts_the_run_once(store: Store) -> None:
    env = make_env(store)
    s, _ = store.schedules.create(schedule(env))
    assert store.schedules.due(NOW + MINUTE - 1) == []
    [due] = store.schedules.due(NOW + MINUTE)
    assert store.schedules.next_tick_time() == NOW + MINUTE

    run = store.schedules.fire(due, NOW + MINUTE, NOW + 2 * MINUTE, tick_run(env, due, NOW + MINUTE), NOW + MINUTE)
    assert run is not None and run.task_id == "email"
    fired = store.schedules.get(env, s.id)
    assert fired is not None and (fired.last_tick_at, fired.next_tick_at) == (NOW + MINUTE, NOW + 2 * MINUTE)
    # The same tick again, as read before (a late or second scheduler): nothing happens.
    assert store.schedules.fire(due, NOW + MINUTE, NOW + 2 * MINUTE, tick_run(env, due, NOW + MINUTE), NOW) is None
    assert len(store.runs.list_runs(env, RunFilter(), 10)[0]) == 1


def test_a_deactivated_or_deleted_schedule_does_not_fire_what_was_read(store: Store) -> None:
    env = make_env(store)
    s, _ = store.schedules.create(schedule(env))
    [due] = store.schedules.due(NOW + MINUTE)
    store.schedules.set_active(env, s.id, False, 0.0, NOW)
    assert store.schedules.fire(due, NOW + MINUTE, NOW + 2 * MINUTE, tick_run(env, due, NOW + MINUTE), NOW) is None
    store.schedules.delete(env, s.id)
    assert store.schedules.fire(due, NOW + MINUTE, NOW + 2 * MINUTE, tick_run(env, due, NOW + MINUTE), NOW) is None
    assert store.runs.list_runs(env, RunFilter(), 10)[0] == []


def test_a_version_syncs_the_declarative_schedules(store: Store) -> None:
    env = make_env(store)
    imperative, _ = store.schedules.create(schedule(env, task_id="email"))
    declared = [DeclaredSchedule("email", "0 9 * * *", "Europe/Paris", NOW + 100)]
    store.environments.register_version(env, "20270116", {"tasks": TASKS}, NOW, declared)
    [daily] = store.schedules.list(env, kind="declarative")[0]
    assert (daily.task_id, daily.cron, daily.timezone, daily.next_tick_at) == (
        "email",
        "0 9 * * *",
        "Europe/Paris",
        NOW + 100,
    )

    # The same declaration keeps the schedule as it is (its next tick, and a user's deactivation).
    store.schedules.set_active(env, daily.id, False, 0.0, NOW)
    later = [DeclaredSchedule("email", "0 9 * * *", "Europe/Paris", NOW + 500)]
    store.environments.register_version(env, "20270116", {"tasks": TASKS}, NOW + 1, later)
    kept = store.schedules.get(env, daily.id)
    assert kept is not None and (kept.next_tick_at, kept.active) == (NOW + 100, False)

    # A changed pattern takes its new next tick; a task that stops declaring one loses it.
    changed = [DeclaredSchedule("email", "0 10 * * *", "Europe/Paris", NOW + 200)]
    store.environments.register_version(env, "20270116", {"tasks": TASKS}, NOW + 2, changed)
    moved = store.schedules.get(env, daily.id)
    assert moved is not None and (moved.cron, moved.next_tick_at) == ("0 10 * * *", NOW + 200)
    store.environments.register_version(env, "20270116", {"tasks": TASKS}, NOW + 3, [])
    assert store.schedules.list(env, kind="declarative")[0] == []
    assert store.schedules.get(env, imperative.id) is not None  # imperative schedules are the user's


def test_two_servers_racing_fire_each_tick_once(two_stores: list[Store]) -> None:  # noqa: F811
    """Two stores on one database (two servers), four threads each reading the due schedules and
    firing what they read, tick after tick: each tick of each schedule is one run."""
    store = two_stores[0]
    env = make_env(store)
    made = [store.schedules.create(schedule(env, created_at=NOW + i))[0] for i in range(10)]
    ticks = [NOW + MINUTE * k for k in range(1, 6)]

    def scheduler(index: int) -> int:
        mine = two_stores[index % 2]
        fired = 0
        for tick in ticks:
            for due in mine.schedules.due(tick):
                if due.next_tick_at != tick:  # another thread already moved it past this tick
                    continue
                run = tick_run(env, due, tick)
                fired += mine.schedules.fire(due, tick, tick + MINUTE, run, tick) is not None
        return fired

    with ThreadPoolExecutor(4) as pool:
        fired = sum(pool.map(scheduler, range(4)))

    runs, _ = store.runs.list_runs(env, RunFilter(), 1000)
    assert fired == len(runs) == len(made) * len(ticks)
    keys = {r.idempotency_key for r in runs}
    assert keys == {f"schedule:{s.id}:{tick}" for s in made for tick in ticks}
    for s in made:
        now = store.schedules.get(env, s.id)
        assert now is not None and (now.last_tick_at, now.next_tick_at) == (ticks[-1], ticks[-1] + MINUTE)
