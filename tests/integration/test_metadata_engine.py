"""``engine.metadata`` on a real SQLite store with a hand-driven clock: whose metadata the parent and
root operations change, the limits at trigger time, and the hour after a run finished."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hightide.core.limits import MAX_METADATA_BYTES
from hightide.core.metadata import MetadataOperation, OperationType
from hightide.core.protocol import AttemptResult
from hightide.engine.environments import bootstrap, find_environment
from hightide.engine.options import TriggerSpec
from hightide.engine.runs import RunEngine
from hightide.errors import ConflictError, NotFoundError, ValidationError
from hightide.store import open_store
from hightide.store.records import Environment

INC = OperationType.INCREMENT


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(tmp_path: Path, clock: Clock) -> Iterator[RunEngine]:
    store = open_store(str(tmp_path / "engine.db"))
    store.migrate()
    yield RunEngine(store, clock=clock)
    store.close()


@pytest.fixture
def env(engine: RunEngine, clock: Clock) -> Environment:
    bootstrap(engine.store, clock.now)
    env = find_environment(engine.store, "dev")
    engine.triggering.register_version(env, {"tasks": [{"id": "a"}]})
    return env


def _trigger(engine: RunEngine, env: Environment, **options: object) -> str:
    [(run, _)] = engine.triggering.trigger(env, [TriggerSpec(task_id="a", **options)])  # type: ignore[arg-type]
    return run.id


def _inc(key: str) -> list[MetadataOperation]:
    return [MetadataOperation(INC, key, 1)]


def test_parent_and_root_operations_reach_their_runs(engine: RunEngine, env: Environment) -> None:
    top = _trigger(engine, env)
    middle = _trigger(engine, env, parent_run_id=top)
    leaf = _trigger(engine, env, parent_run_id=middle)

    assert engine.metadata.update(env, leaf, _inc("mine"), _inc("children"), _inc("leaves")) == {"mine": 1}
    assert engine.core.get_run(env, middle).metadata == {"children": 1}
    assert engine.core.get_run(env, top).metadata == {"leaves": 1}
    # A run nobody triggered from a task is its own parent and root.
    assert engine.metadata.update(env, top, (), _inc("leaves"), _inc("leaves")) == {"leaves": 3}


def test_trigger_time_metadata_has_the_256_kb_limit(engine: RunEngine, env: Environment) -> None:
    with pytest.raises(ValidationError) as raised:
        _trigger(engine, env, metadata={"x": "y" * MAX_METADATA_BYTES})
    assert raised.value.details["field"] == "options.metadata" and raised.value.details["limit"] == MAX_METADATA_BYTES
    assert "256 KB" in raised.value.message


def test_a_finished_run_changes_for_an_hour_then_no_more(engine: RunEngine, env: Environment, clock: Clock) -> None:
    version = engine.triggering.register_version(env, {"tasks": [{"id": "a"}]})
    run_id = _trigger(engine, env)
    [claimed] = engine.execution.claim(env, "w1", version, 1)
    [reply] = engine.execution.report(env, [AttemptResult(run_id, 1, True, output=None, execution=claimed.executions)])
    assert reply.accepted

    clock.now += 3500
    assert engine.metadata.replace(env, run_id, {"reviewed": True}) == {"reviewed": True}
    assert engine.metadata.add_tags(env, run_id, ["reviewed"]) == ["reviewed"]
    clock.now += 200
    with pytest.raises(ConflictError, match="more than an hour ago"):
        engine.metadata.update(env, run_id, _inc("late"))
    with pytest.raises(ConflictError):
        engine.metadata.add_tags(env, run_id, ["late"])


def test_unknown_runs_are_not_found(engine: RunEngine, env: Environment) -> None:
    with pytest.raises(NotFoundError):
        engine.metadata.update(env, "run_missing", _inc("n"))
    with pytest.raises(NotFoundError):
        engine.metadata.add_tags(env, "run_missing", ["x"])
