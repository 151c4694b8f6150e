"""The engine on a real SQLite store with a hand-driven clock: limits, backoff, leases, expiry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hightide.core.failures import Failure, FailureKind
from hightide.core.protocol import AttemptResult, ResultReply
from hightide.core.states import RunStatus
from hightide.engine.environments import bootstrap, find_environment
from hightide.engine.options import TriggerSpec
from hightide.engine.runs import RunEngine
from hightide.errors import ConflictError
from hightide.store import open_store
from hightide.store.records import Environment, Run, Version


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0  # 2027-01-15

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(tmp_path: Path, clock: Clock):
    store = open_store(str(tmp_path / "engine.db"))
    store.migrate()
    yield RunEngine(store, clock=clock)
    store.close()


@pytest.fixture
def env(engine: RunEngine, clock: Clock) -> Environment:
    bootstrap(engine.store, clock.now)
    return find_environment(engine.store, "dev")


def _version(engine: RunEngine, env: Environment, **queue: int) -> Version:
    tasks = [
        {"id": "a", "retry": {"max_attempts": 3, "min_timeout": 10, "max_timeout": 10, "randomize": False}},
        {"id": "b", "queue": {"name": "task/b", **queue}},
    ]
    return engine.triggering.register_version(env, {"tasks": tasks})


def _trigger(engine: RunEngine, env: Environment, task: str, n: int = 1) -> list[str]:
    return [run.id for run, _ in engine.triggering.trigger(env, [TriggerSpec(task_id=task) for _ in range(n)])]


def _report(engine: RunEngine, env: Environment, result: AttemptResult[Any]) -> ResultReply:
    """One result, reported as a worker reports its batch."""
    [reply] = engine.execution.report(env, [result])
    return reply


def _failed(engine: RunEngine, env: Environment, run_id: str, attempt: int, failure: Failure) -> Run:
    assert _report(engine, env, AttemptResult(run_id, attempt, False, error=failure.to_dict())).accepted
    return engine.core.get_run(env, run_id)


def test_versions_are_numbered_per_day(engine: RunEngine, env: Environment) -> None:
    assert _version(engine, env).version == "20270115.1"
    assert _version(engine, env).version == "20270115.2"


def test_environment_limit_is_enforced_by_the_engine(engine: RunEngine, env: Environment, clock: Clock) -> None:
    version = _version(engine, env)
    engine.store.environments.set_environment_concurrency(env.id, 2)
    ids = _trigger(engine, env, "a", 5)
    first = engine.execution.claim(env, "w1", version, 10)
    assert [r.id for r in first] == ids[:2]  # oldest first, and no more than the limit
    assert engine.execution.claim(env, "w2", version, 10) == []
    assert _report(engine, env, AttemptResult(first[0].id, 1, True, "ok")).status == "COMPLETED"
    assert [r.id for r in engine.execution.claim(env, "w2", version, 10)] == [ids[2]]


def test_queue_limit_is_enforced_by_the_engine(engine: RunEngine, env: Environment) -> None:
    version = _version(engine, env, concurrency_limit=1)
    _trigger(engine, env, "b", 3)
    a_ids = _trigger(engine, env, "a", 2)
    claimed = engine.execution.claim(env, "w1", version, 10)
    assert sorted(r.task_id for r in claimed) == ["a", "a", "b"]  # one b, the rest wait
    assert {r.id for r in claimed} >= set(a_ids)


def test_priority_is_seconds_ahead_in_the_queue(engine: RunEngine, env: Environment, clock: Clock) -> None:
    version = _version(engine, env)
    old = _trigger(engine, env, "a")[0]
    clock.now += 5
    [(urgent, _)] = engine.triggering.trigger(env, [TriggerSpec(task_id="a", priority=10)])
    clock.now += 5
    assert [r.id for r in engine.execution.claim(env, "w", version, 2)] == [urgent.id, old]


def test_failed_attempt_waits_for_its_backoff(engine: RunEngine, env: Environment, clock: Clock) -> None:
    version = _version(engine, env)
    [run_id] = _trigger(engine, env, "a")
    engine.execution.claim(env, "w", version, 1)
    run = _failed(engine, env, run_id, 1, Failure("ValueError", "nope"))
    assert run.status == RunStatus.QUEUED and run.error["name"] == "ValueError"
    clock.now += 9.9
    assert engine.execution.claim(env, "w", version, 1) == []
    clock.now += 0.2
    [again] = engine.execution.claim(env, "w", version, 1)
    assert again.attempt_count == 2


def test_lapsed_lease_retries_then_crashes(engine: RunEngine, env: Environment, clock: Clock) -> None:
    version = _version(engine, env)
    [run_id] = _trigger(engine, env, "a")
    for attempt in (1, 2, 3):
        [claimed] = engine.execution.claim(env, "w", version, 1)
        assert claimed.attempt_count == attempt
        clock.now += engine.settings.lease_seconds + 1
        assert engine.control.process_due() == 1
        clock.now += 60  # past any backoff
    run = engine.core.get_run(env, run_id)
    assert run.status == RunStatus.CRASHED and run.error["name"] == "WorkerLost"
    assert [a.status for a in engine.core.attempts(run)] == ["FAILED"] * 3


def test_heartbeat_keeps_the_lease(engine: RunEngine, env: Environment, clock: Clock) -> None:
    version = _version(engine, env)
    [run_id] = _trigger(engine, env, "a")
    engine.execution.claim(env, "w", version, 1)
    for _ in range(5):
        clock.now += engine.settings.lease_seconds - 1
        assert (
            engine.store.claims.extend_leases("w", [(run_id, 1)], clock.now + engine.settings.lease_seconds, clock.now)
            == []
        )
        assert engine.control.process_due() == 0
    assert engine.core.get_run(env, run_id).status == RunStatus.EXECUTING


def test_crash_and_timeout_kinds_decide_the_final_status(engine: RunEngine, env: Environment) -> None:
    version = _version(engine, env)
    [crash, slow] = _trigger(engine, env, "b", 2)
    engine.execution.claim(env, "w", version, 2)
    assert (
        _failed(engine, env, crash, 1, Failure("RunnerCrashed", "SIGKILL", kind=FailureKind.CRASH)).status
        == RunStatus.QUEUED
    )
    engine.store.runs.update_run(slow, expect_status="EXECUTING", expect_attempt=1, values={"max_attempts": 1}, now=0)
    assert (
        _failed(engine, env, slow, 1, Failure("MaxDurationExceeded", "", kind=FailureKind.TIMEOUT)).status
        == RunStatus.TIMED_OUT
    )


def test_a_completion_after_cancel_is_refused(engine: RunEngine, env: Environment) -> None:
    version = _version(engine, env)
    [run_id] = _trigger(engine, env, "a")
    engine.execution.claim(env, "w", version, 1)
    engine.control.cancel(env, run_id)
    reply = _report(engine, env, AttemptResult(run_id, 1, True, "too late"))
    assert (reply.accepted, reply.code) == (False, "conflict") and "result discarded" in (reply.message or "")
    run = engine.core.get_run(env, run_id)
    assert run.status == RunStatus.CANCELED and run.output is None


def test_cancel_reaches_unfinished_children(engine: RunEngine, env: Environment) -> None:
    _version(engine, env)
    [parent] = _trigger(engine, env, "a")
    children = [r.id for r, _ in engine.triggering.trigger(env, [TriggerSpec(task_id="b", parent_run_id=parent)] * 2)]
    engine.control.cancel(env, parent)
    assert {engine.core.get_run(env, c).status for c in children} == {RunStatus.CANCELED}


def test_delayed_runs_are_enqueued_when_due(engine: RunEngine, env: Environment, clock: Clock) -> None:
    version = _version(engine, env)
    [(run, _)] = engine.triggering.trigger(env, [TriggerSpec(task_id="a", delay_until=clock.now + 60)])
    assert run.status == RunStatus.DELAYED
    assert engine.control.next_due_in(cap=3600) == pytest.approx(60)
    clock.now += 59
    assert engine.control.process_due() == 0 and engine.execution.claim(env, "w", version, 1) == []
    clock.now += 2
    assert engine.control.process_due() == 1
    assert [r.id for r in engine.execution.claim(env, "w", version, 1)] == [run.id]


def test_a_heartbeat_landing_during_lease_recovery_wins(engine: RunEngine, env: Environment, clock: Clock) -> None:
    version = _version(engine, env)
    [run_id] = _trigger(engine, env, "a")
    engine.execution.claim(env, "w", version, 1)
    clock.now += engine.settings.lease_seconds + 1
    [lapsed] = engine.store.claims.due_runs(clock.now)["lease_expired"]
    # the worker's heartbeat lands after the scheduler read the run but before it acted
    engine.store.claims.extend_leases("w", [(run_id, 1)], clock.now + engine.settings.lease_seconds, clock.now)
    with pytest.raises(ConflictError):
        engine.core.fail(lapsed, Failure("WorkerLost", "lease expired", kind=FailureKind.CRASH), clock.now)
    assert engine.core.get_run(env, run_id).status == RunStatus.EXECUTING


def test_replay_keeps_the_payload_or_takes_a_new_one(engine: RunEngine, env: Environment) -> None:
    _version(engine, env)
    [(original, _)] = engine.triggering.trigger(
        env, [TriggerSpec(task_id="a", payload={"n": 1}, tags=("t",), metadata={"m": 1})]
    )
    same = engine.control.replay(env, original.id)
    edited = engine.control.replay(env, original.id, {"n": 2})
    null = engine.control.replay(env, original.id, None)
    assert [r.payload for r in (same, edited, null)] == [{"n": 1}, {"n": 2}, None]
    assert len({original.id, same.id, edited.id, null.id}) == 4
    assert all(r.task_id == "a" and r.tags == ["t"] and r.metadata == {"m": 1} for r in (same, edited, null))
