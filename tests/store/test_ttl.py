"""A run's ttl counts from when it is queued, not from when it was triggered: the engine with a
hand-driven clock, on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from hightide.core.states import RunStatus
from hightide.engine.environments import bootstrap, find_environment
from hightide.engine.options import TriggerSpec
from hightide.engine.runs import RunEngine
from hightide.store import Store
from hightide.store.records import Environment, Run

START = 1_800_000_000.0


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


@pytest.fixture
def env(engine: RunEngine, clock: Clock) -> Environment:
    bootstrap(engine.store, clock.now)
    env = find_environment(engine.store, "dev")
    engine.triggering.register_version(env, {"tasks": [{"id": "report", "ttl": 10}]})
    return env


def _status(engine: RunEngine, env: Environment, run: Run) -> RunStatus:
    return engine.core.get_run(env, run.id).status


def test_a_delayed_runs_ttl_starts_when_it_is_queued(engine: RunEngine, env: Environment, clock: Clock) -> None:
    [(run, _)] = engine.triggering.trigger(env, [TriggerSpec(task_id="report", delay_until=START + 60, ttl=10)])
    assert run.status == RunStatus.DELAYED
    assert run.ttl_expires_at == START + 70

    clock.now = START + 30  # created_at + ttl is long past: the run is still only delayed
    engine.control.process_due()
    assert _status(engine, env, run) == RunStatus.DELAYED

    clock.now = START + 65  # the scheduler comes 5 s after the delay ended: the ttl starts now
    engine.control.process_due()
    queued = engine.core.get_run(env, run.id)
    assert queued.status == RunStatus.QUEUED and queued.ttl_expires_at == START + 75

    clock.now = START + 74.9
    engine.control.process_due()
    assert _status(engine, env, run) == RunStatus.QUEUED
    clock.now = START + 75
    engine.control.process_due()
    assert _status(engine, env, run) == RunStatus.EXPIRED


def test_the_tasks_ttl_counts_from_the_end_of_the_delay_too(engine: RunEngine, env: Environment, clock: Clock) -> None:
    [(run, _)] = engine.triggering.trigger(env, [TriggerSpec(task_id="report", delay_until=START + 60)])
    assert run.ttl_expires_at == START + 70  # the task's ttl (10 s), after the delay
    [(now_run, _)] = engine.triggering.trigger(env, [TriggerSpec(task_id="report")])
    assert now_run.status == RunStatus.QUEUED and now_run.ttl_expires_at == START + 10


def test_a_rescheduled_runs_ttl_moves_with_its_delay(engine: RunEngine, env: Environment, clock: Clock) -> None:
    [(run, _)] = engine.triggering.trigger(env, [TriggerSpec(task_id="report", delay_until=START + 60, ttl=10)])
    clock.now = START + 20
    moved = engine.control.reschedule(env, run.id, "100s")
    assert moved.delay_until == START + 120 and moved.ttl_expires_at == START + 130

    clock.now = START + 80  # past the first delay and its ttl: still delayed, not expired
    engine.control.process_due()
    assert _status(engine, env, run) == RunStatus.DELAYED
    clock.now = START + 120
    engine.control.process_due()
    queued = engine.core.get_run(env, run.id)
    assert queued.status == RunStatus.QUEUED and queued.ttl_expires_at == START + 130
