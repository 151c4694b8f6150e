"""Schedules in the engine with a hand-driven clock, on SQLite and PostgreSQL: the payload of a
tick, no drift, only the latest missed tick after downtime, declarative sync on registering, and
the imperative operations' rules."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from hightide.core.states import RunStatus
from hightide.engine.environments import bootstrap, find_environment
from hightide.engine.runs import RunEngine
from hightide.errors import ConflictError, NotFoundError, ValidationError
from hightide.store import Store
from hightide.store.records import Environment, Run, RunFilter
from tests.store.test_store_claims import two_stores  # noqa: F401 (a fixture)

START = datetime(2027, 3, 1, 8, 59, 30, tzinfo=UTC).timestamp()  # 30 s before 09:00 UTC


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(store: Store, clock: Clock) -> RunEngine:
    return RunEngine(store, clock=clock)


TASKS = [{"id": "report"}, {"id": "digest", "schedule": {"cron": "0 9 * * *", "timezone": "Europe/Paris"}}]


@pytest.fixture
def env(engine: RunEngine, clock: Clock) -> Environment:
    bootstrap(engine.store, clock.now)
    env = find_environment(engine.store, "dev")
    engine.triggering.register_version(env, {"tasks": [dict(t) for t in TASKS]})
    return env


def runs_of(engine: RunEngine, env: Environment, task: str = "report") -> list[Run]:
    runs, _ = engine.store.runs.list_runs(env.id, RunFilter(task_ids=(task,)), 100)
    return sorted(runs, key=lambda r: r.created_at)


def test_a_tick_fires_one_run_with_the_scheduled_payload(engine: RunEngine, env: Environment, clock: Clock) -> None:
    state, created = engine.schedules.create(env, "report", "* * * * *", "Europe/Paris", external_id="user_42")
    assert created and state.schedule.next_tick_at == START + 30
    assert len(state.upcoming) == 5 and state.upcoming[1] == START + 90
    assert engine.schedules.next_due_in(60) == 25  # its run is made FIRE_AHEAD (5 s) before the tick
    assert engine.schedules.fire_due() == 0  # not yet

    clock.now = START + 26  # 4 s before the tick: made now, queued, and not claimable before the tick
    assert engine.schedules.fire_due() == 1
    [run] = runs_of(engine, env)
    assert run.status == RunStatus.QUEUED and run.available_at == START + 30
    version = engine.store.environments.current_version(env.id)
    assert version is not None and engine.execution.claim(env, "w1", version, 10) == []
    clock.now = START + 30.2
    assert engine.schedules.fire_due() == 0  # the same tick never twice
    [run] = runs_of(engine, env)
    assert run.status == RunStatus.QUEUED
    assert [r.id for r in engine.execution.claim(env, "w1", version, 10)] == [run.id]  # on the minute
    assert run.tags == [f"schedule:{state.id}"]
    assert run.payload == {
        "timestamp": "2027-03-01T10:00:00+01:00",
        "last_timestamp": None,
        "timezone": "Europe/Paris",
        "schedule_id": state.id,
        "external_id": "user_42",
        "upcoming": [f"2027-03-01T10:0{m}:00+01:00" for m in range(1, 6)],
    }

    clock.now = START + 95  # the next tick, a late pass: the payload names the tick, not the pass
    assert engine.schedules.fire_due() == 1
    second = runs_of(engine, env)[1]
    assert second.payload["timestamp"] == "2027-03-01T10:01:00+01:00"
    assert second.payload["last_timestamp"] == "2027-03-01T10:00:00+01:00"
    after = engine.schedules.get(env, state.id).schedule
    assert after.next_tick_at == START + 150  # from the pattern, not from when the pass came


def test_a_schedule_stopped_before_its_tick_withdraws_the_run_made_ahead(
    engine: RunEngine, env: Environment, clock: Clock
) -> None:
    kept, _ = engine.schedules.create(env, "report", "* * * * *")
    stopped, _ = engine.schedules.create(env, "report", "* * * * *")
    deleted, _ = engine.schedules.create(env, "report", "* * * * *")
    moved, _ = engine.schedules.create(env, "report", "* * * * *")
    clock.now = START + 27
    assert engine.schedules.fire_due() == 4
    engine.schedules.deactivate(env, stopped.id)
    engine.schedules.delete(env, deleted.id)
    engine.schedules.update(env, moved.id, cron="0 * * * *")  # its next tick is 10:00 now
    by_schedule = {r.payload["schedule_id"]: r.status for r in runs_of(engine, env)}
    assert by_schedule == {
        kept.id: RunStatus.QUEUED,
        stopped.id: RunStatus.CANCELED,
        deleted.id: RunStatus.CANCELED,
        moved.id: RunStatus.CANCELED,
    }
    # Once its tick came, a run is the schedule's past: deactivating leaves it be.
    clock.now = START + 31
    engine.schedules.deactivate(env, kept.id)
    assert {r.payload["schedule_id"]: r.status for r in runs_of(engine, env)}[kept.id] == RunStatus.QUEUED


def test_after_downtime_only_the_latest_missed_tick_fires(engine: RunEngine, env: Environment, clock: Clock) -> None:
    state, _ = engine.schedules.create(env, "report", "*/5 * * * *")
    clock.now = START + 3600 + 7  # an hour down: twelve ticks missed
    assert engine.schedules.fire_due() == 1
    [run] = runs_of(engine, env)
    assert run.payload["timestamp"] == "2027-03-01T09:55:00+00:00"
    assert engine.schedules.get(env, state.id).schedule.next_tick_at == START + 3600 + 30


def test_a_deactivated_schedule_does_not_fire_and_activating_skips_what_it_missed(
    engine: RunEngine, env: Environment, clock: Clock
) -> None:
    state, _ = engine.schedules.create(env, "report", "* * * * *")
    off = engine.schedules.deactivate(env, state.id)
    assert not off.schedule.active and off.upcoming == []
    clock.now = START + 600
    assert engine.schedules.fire_due() == 0
    on = engine.schedules.activate(env, state.id)
    assert on.schedule.active and on.schedule.next_tick_at == START + 630
    assert engine.schedules.fire_due() == 0


def test_a_deduplication_key_updates_in_place(engine: RunEngine, env: Environment) -> None:
    first, created = engine.schedules.create(env, "report", "0 9 * * *", deduplication_key="user_42-report")
    again, created_again = engine.schedules.create(
        env, "report", "*/5 * * * *", "UTC", external_id="user_42", deduplication_key="user_42-report"
    )
    assert created and not created_again and again.id == first.id
    assert (again.schedule.cron, again.schedule.external_id) == ("*/5 * * * *", "user_42")
    assert [s.id for s in engine.schedules.list(env, kind="imperative")[0]] == [first.id]


def test_update_and_delete_imperative_schedules(engine: RunEngine, env: Environment, clock: Clock) -> None:
    state, _ = engine.schedules.create(env, "report", "0 9 * * *")
    moved = engine.schedules.update(env, state.id, cron="30 9 * * *", external_id="x")
    assert moved.schedule.next_tick_at == START + 30 + 1800 and moved.schedule.external_id == "x"
    engine.schedules.delete(env, state.id)
    with pytest.raises(NotFoundError):
        engine.schedules.get(env, state.id)


def test_bad_input_is_refused_with_the_field(engine: RunEngine, env: Environment) -> None:
    with pytest.raises(NotFoundError, match="task 'nope' is not registered"):
        engine.schedules.create(env, "nope", "* * * * *")
    with pytest.raises(ValidationError, match="cron"):
        engine.schedules.create(env, "report", "* * *")
    with pytest.raises(ValidationError, match="timezone"):
        engine.schedules.create(env, "report", "* * * * *", "Mars/Base")


def test_a_declarative_schedule_is_synced_and_fires(engine: RunEngine, env: Environment, clock: Clock) -> None:
    [daily] = engine.schedules.list(env, kind="declarative")[0]
    assert (daily.schedule.task_id, daily.schedule.cron, daily.schedule.timezone) == (
        "digest",
        "0 9 * * *",
        "Europe/Paris",
    )
    with pytest.raises(ConflictError, match="declared by task 'digest' in code"):
        engine.schedules.delete(env, daily.id)
    with pytest.raises(ConflictError):
        engine.schedules.update(env, daily.id, cron="* * * * *")

    clock.now = datetime(2027, 3, 2, 8, 0, 1, tzinfo=UTC).timestamp()  # 09:00:01 in Paris
    assert engine.schedules.fire_due() == 1
    [run] = runs_of(engine, env, "digest")
    assert run.payload["timestamp"] == "2027-03-02T09:00:00+01:00"

    # A version whose task no longer declares it removes it; one declaring it for prod only, too.
    prod_only = [{"id": "report"}, {"id": "digest", "schedule": {"cron": "0 9 * * *", "environments": ["prod"]}}]
    engine.triggering.register_version(env, {"tasks": prod_only})
    assert engine.schedules.list(env, kind="declarative")[0] == []
    prod = find_environment(engine.store, "prod")
    engine.triggering.register_version(prod, {"tasks": [dict(t) for t in prod_only]})
    assert [s.schedule.task_id for s in engine.schedules.list(prod, kind="declarative")[0]] == ["digest"]


def test_a_manifest_with_a_bad_schedule_is_refused(engine: RunEngine, env: Environment) -> None:
    with pytest.raises(ValidationError, match=r"manifest.tasks\[0\].schedule.cron"):
        engine.triggering.register_version(env, {"tasks": [{"id": "x", "schedule": {"cron": "nope"}}]})
    with pytest.raises(ValidationError, match="timezone"):
        engine.triggering.register_version(
            env, {"tasks": [{"id": "x", "schedule": {"cron": "* * * * *", "timezone": "X"}}]}
        )


def test_a_tick_the_task_refuses_is_skipped_not_retried(engine: RunEngine, env: Environment, clock: Clock) -> None:
    strict = {"id": "strict", "payload_schema": {"type": "object", "required": ["order_id"]}}
    engine.triggering.register_version(env, {"tasks": [strict]})
    state, _ = engine.schedules.create(env, "strict", "* * * * *")
    clock.now = START + 31
    assert engine.schedules.fire_due() == 0  # its payload is a ScheduledPayload, which it refuses
    assert engine.schedules.get(env, state.id).schedule.next_tick_at == START + 90
    assert engine.schedules.next_due_in(60) == pytest.approx(54)  # not due again at once (5 s ahead of 09:01)


def test_two_servers_schedulers_fire_each_tick_once(
    two_stores: list[Store],  # noqa: F811
    clock: Clock,
) -> None:
    """Two engines on one database (two servers), their scheduler passes racing minute after minute."""
    engines = [RunEngine(s, clock=clock) for s in two_stores]
    bootstrap(engines[0].store, clock.now)
    env = find_environment(engines[0].store, "dev")
    engines[0].triggering.register_version(env, {"tasks": [dict(t) for t in TASKS]})
    made = [engines[0].schedules.create(env, "report", "* * * * *", external_id=f"u{i}")[0] for i in range(8)]
    fired = 0
    for minute in range(1, 4):
        clock.now = START + 30 + 60 * (minute - 1) + 0.5
        with ThreadPoolExecutor(4) as pool:
            fired += sum(pool.map(lambda i: engines[i % 2].schedules.fire_due(), range(4)))
    runs = runs_of(engines[0], env)
    assert fired == len(runs) == len(made) * 3
    per_schedule = {
        s.id: sorted(r.payload["timestamp"] for r in runs if r.payload["schedule_id"] == s.id) for s in made
    }
    assert all(
        ts == ["2027-03-01T09:00:00+00:00", "2027-03-01T09:01:00+00:00", "2027-03-01T09:02:00+00:00"]
        for ts in per_schedule.values()
    )
