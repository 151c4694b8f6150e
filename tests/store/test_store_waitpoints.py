"""The store contract, part 4: durable execution. Run journals (``record_entry``), suspension,
waitpoints resolving (a child finishing, a timer, a token) and resuming the runs that wait on them,
and claiming a resumed run (see docs/durable-execution.md)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from typing import Any

import pytest
from sqlalchemy import select

from hightide.core.states import RunStatus
from hightide.errors import AlreadyExistsError, ConflictError
from hightide.store import Store
from hightide.store import schema as t
from hightide.store.records import JournalEntry, NewRun, Run, RunChange, Suspension, Waitpoint
from tests.store.factories import NOW, finish, insert, make_env, new_run, new_waitpoint, start_run

# -- helpers ---------------------------------------------------------------------------------------


def run_of(store: Store, run_id: str) -> Run:
    run = store.runs.get_run(run_id)
    assert run is not None
    return run


def waitpoint_of(store: Store, waitpoint_id: str) -> Waitpoint:
    wp = store.waitpoints.get_waitpoint(waitpoint_id, None)
    assert wp is not None
    return wp


def resuming(store: Store, run_id: str) -> bool:
    """The ``resuming`` flag (not part of ``Run``): the next claim continues the same attempt."""
    with store.engine.connect() as conn:
        return bool(conn.execute(select(t.runs.c.resuming).where(t.runs.c.id == run_id)).scalar_one())


def links(store: Store, run_id: str) -> list[str]:
    """The waitpoints ``run_id`` is suspended on."""
    rw = t.run_waitpoints
    with store.engine.connect() as conn:
        return sorted(row.waitpoint_id for row in conn.execute(select(rw).where(rw.c.run_id == run_id)))


def count(store: Store, table: Any) -> int:
    with store.engine.connect() as conn:
        return len(conn.execute(select(table)).all())


def timer(env: str, owner: Run, resume_at: float, *, now: float = NOW, **fields: Any) -> Waitpoint:
    return new_waitpoint(env, "DURATION", created_at=now, owner_run_id=owner.id, resume_at=resume_at, **fields)


def record_wait(store: Store, run: Run, seq: str, resume_at: float, *, now: float = NOW, **fields: Any) -> JournalEntry:
    entry, new = store.waitpoints.record_entry(
        JournalEntry(run.id, seq, "wait", "duration"),
        run.attempt_count,
        waitpoint=timer(run.environment_id, run, resume_at, now=now, **fields),
        now=now,
    )
    assert new is True
    return entry


def trigger_and_wait(store: Store, parent: Run, seq: str, *children: NewRun, now: float = NOW) -> JournalEntry:
    entry, new = store.waitpoints.record_entry(
        JournalEntry(parent.id, seq, "batch_trigger_and_wait", "resize"),
        parent.attempt_count,
        new_runs=[replace(child, parent_run_id=parent.id, root_run_id=parent.id) for child in children],
        await_runs=True,
        now=now,
    )
    assert new is True
    return entry


def suspend_one(
    store: Store,
    run_id: str,
    attempt: int,
    worker_id: str,
    waiting_on: tuple[str, ...],
    now: float,
    execution: int | None = None,
) -> RunStatus | None:
    """One suspension on the journal positions ``waiting_on``: the batch of one."""
    [status] = store.waitpoints.suspend_runs([Suspension(run_id, attempt, worker_id, execution, waiting_on)], now)
    return status


def suspend(store: Store, run: Run, entry: JournalEntry, *, now: float = NOW) -> RunStatus | None:
    assert run.worker_id is not None
    return suspend_one(store, run.id, run.attempt_count, run.worker_id, (entry.seq,), now)


def wait_for(store: Store, run: Run, seq: str, waitpoint: Waitpoint, *, now: float = NOW) -> JournalEntry:
    """Record that ``run`` waits, at ``seq``, for the existing ``waitpoint`` (a token)."""
    entry, new = store.waitpoints.record_entry(
        JournalEntry(run.id, seq, "wait_for_token", waitpoint.id, waitpoint_ids=[waitpoint.id]), 1, now=now
    )
    assert new is True
    return entry


def claim(
    store: Store, env: str, tasks: tuple[str, ...] = ("email",), *, worker_id: str = "w2", now: float
) -> list[Run]:
    return store.claims.claim_runs(
        env, list(tasks), worker_id=worker_id, version="20270116.1", limit=10, lease_seconds=30.0, now=now
    )


def at_once(*actions: Callable[[], Any]) -> list[Any]:
    """Run ``actions`` in threads released together; what each returned, or the exception it raised."""
    barrier = threading.Barrier(len(actions))

    def run(action: Callable[[], Any]) -> Any:
        barrier.wait()
        return action()

    outcomes: list[Any] = []
    with ThreadPoolExecutor(len(actions)) as pool:
        for future in [pool.submit(run, action) for action in actions]:
            try:
                outcomes.append(future.result())
            except Exception as exc:
                outcomes.append(exc)
    return outcomes


def errors(outcomes: list[Any]) -> list[str]:
    return [f"{type(o).__name__}: {o}".splitlines()[0] for o in outcomes if isinstance(o, Exception)]


# -- recording journal entries -------------------------------------------------------------------------


def test_record_entry_inserts_the_new_runs_with_the_entry(store: Store) -> None:
    env = make_env(store)
    parent = start_run(store, env)
    children = [new_run(env, "resize", created_at=NOW + 1, parent_run_id=parent.id) for _ in range(2)]

    entry, new = store.waitpoints.record_entry(
        JournalEntry(parent.id, "0", "batch_trigger", "resize", result="ignored"),
        1,
        new_runs=children,
        now=NOW + 1,
    )

    assert new is True
    assert (entry.run_id, entry.seq, entry.kind, entry.name, entry.waitpoint_ids, entry.created_at) == (
        parent.id,
        "0",
        "batch_trigger",
        "resize",
        [],
        NOW + 1,
    )
    # The result lists the runs (whatever the entry carried): that is what a replay returns.
    assert entry.result == {"runs": [{"id": c.id, "task_id": "resize", "is_cached": False} for c in children]}
    for child in children:
        stored = run_of(store, child.id)
        assert (stored.status, stored.parent_run_id) == (RunStatus.QUEUED, parent.id)
    view = store.waitpoints.journal_view([parent.id])
    assert view.entries == {parent.id: [entry]}
    assert (view.waitpoints, view.runs) == ({}, {})
    assert store.waitpoints.list_waitpoints(env, "RUN") == ([], None)  # a plain trigger waits on nothing


def test_record_entry_with_await_runs_creates_a_run_waitpoint_per_child(store: Store) -> None:
    env = make_env(store)
    parent = start_run(store, env)
    children = [new_run(env, "resize", created_at=NOW + 1) for _ in range(2)]

    entry = trigger_and_wait(store, parent, "0", *children, now=NOW + 1)

    assert len(entry.waitpoint_ids) == 2
    waits = [waitpoint_of(store, i) for i in entry.waitpoint_ids]
    assert [(wp.kind, wp.status, wp.run_id, wp.owner_run_id, wp.environment_id) for wp in waits] == [
        ("RUN", "WAITING", c.id, parent.id, env) for c in children
    ]
    assert all(wp.created_at == NOW + 1 and wp.completed_at is None for wp in waits)
    view = store.waitpoints.entry_view(entry)
    assert view.entries == {parent.id: [entry]}
    assert set(view.waitpoints) == set(entry.waitpoint_ids)
    assert {run_id: run.status for run_id, run in view.runs.items()} == {c.id: RunStatus.QUEUED for c in children}
    assert store.waitpoints.journal_view([parent.id]) == view


def test_positions_are_per_task_paths_and_entries_name_their_attempt(store: Store) -> None:
    env = make_env(store)
    run = start_run(store, env)
    for seq in ("0", "t0/0", "t1/0", "t1/1", "t1/t0/0", "10", "2"):
        _, new = store.waitpoints.record_entry(JournalEntry(run.id, seq, "step", f"s{seq}", result=seq), 1, now=NOW)
        assert new is True
    entries = store.waitpoints.journal_view([run.id]).entries[run.id]
    assert sorted(e.seq for e in entries) == sorted(["0", "t0/0", "t1/0", "t1/1", "t1/t0/0", "10", "2"])
    assert all(e.result == e.seq and e.name == f"s{e.seq}" and e.attempt == 1 for e in entries)
    # "t1/0" and "t1/1" are two positions, not one.
    _, new = store.waitpoints.record_entry(
        JournalEntry(run.id, "t1/1", "step", "st1/1", result="again"), 1, now=NOW + 1
    )
    assert new is False


def test_recording_a_position_twice_keeps_the_first_entry_and_does_nothing(store: Store) -> None:
    env = make_env(store)
    run = start_run(store, env)
    first, new = store.waitpoints.record_entry(
        JournalEntry(run.id, "0", "step", "charge", result={"id": "ch_1"}), 1, now=NOW
    )
    assert new is True

    # The same position, recorded again (a replay racing, or a retried request) with other work:
    # the first entry is returned and nothing else happens.
    child = new_run(env, "resize", parent_run_id=run.id)
    again, new = store.waitpoints.record_entry(
        JournalEntry(run.id, "0", "trigger_and_wait", "resize"),
        1,
        new_runs=[child],
        await_runs=True,
        now=NOW + 5,
    )
    assert (again, new) == (first, False)
    assert store.runs.get_run(child.id) is None
    _, new = store.waitpoints.record_entry(
        JournalEntry(run.id, "0", "wait", "duration"), 1, waitpoint=timer(env, run, NOW + 60), now=NOW + 6
    )
    assert new is False
    assert count(store, t.waitpoints) == 0
    assert store.waitpoints.journal_view([run.id]).entries == {run.id: [first]}

    # Another position records as usual.
    second, new = store.waitpoints.record_entry(JournalEntry(run.id, "1", "step", "mail", result=None), 1, now=NOW + 7)
    assert new is True
    assert [e.seq for e in store.waitpoints.journal_view([run.id]).entries[run.id]] == ["0", "1"]
    assert second.result is None


def test_a_recorded_position_is_returned_even_once_the_run_moved_on(store: Store) -> None:
    env = make_env(store)
    run = start_run(store, env)
    first, _ = store.waitpoints.record_entry(JournalEntry(run.id, "0", "step", "charge", result=1), 1, now=NOW)
    finish(store, run)
    # A late retry of the request that recorded it is answered, not refused.
    assert store.waitpoints.record_entry(JournalEntry(run.id, "0", "step", "charge", result=1), 1, now=NOW + 1) == (
        first,
        False,
    )


def test_new_runs_and_the_entry_are_one_transaction(store: Store) -> None:
    env = make_env(store)
    run = start_run(store, env)
    existing = insert(store, new_run(env, "resize"))[0]
    fine = new_run(env, "resize", created_at=NOW + 1)
    clash = replace(new_run(env, "resize"), id=existing.id)  # the same primary key

    with pytest.raises(AlreadyExistsError):
        store.waitpoints.record_entry(
            JournalEntry(run.id, "0", "batch_trigger_and_wait", "resize"),
            1,
            new_runs=[fine, clash],
            await_runs=True,
            now=NOW + 1,
        )

    assert store.runs.get_run(fine.id) is None
    assert store.waitpoints.journal_view([run.id]).entries == {}
    assert count(store, t.waitpoints) == 0


@pytest.mark.parametrize("case", ["queued", "other_attempt", "finished", "waiting", "missing"])
def test_record_entry_is_refused_unless_the_run_executes_that_attempt(store: Store, case: str) -> None:
    env = make_env(store)
    if case == "queued":
        run_id, attempt = insert(store, new_run(env))[0].id, 1
    elif case == "missing":
        run_id, attempt = "run_missing", 1
    else:
        run = start_run(store, env)
        run_id, attempt = run.id, 1
        if case == "other_attempt":
            attempt = 2
        elif case == "finished":
            finish(store, run)
        elif case == "waiting":
            entry = record_wait(store, run, "0", NOW + 60)
            assert suspend(store, run, entry) == RunStatus.WAITING
    child = new_run(env, "resize")

    with pytest.raises(ConflictError) as raised:
        store.waitpoints.record_entry(
            JournalEntry(run_id, "1", "trigger_and_wait", "resize"),
            attempt,
            new_runs=[child],
            await_runs=True,
            now=NOW + 1,
        )

    assert not isinstance(raised.value, AlreadyExistsError)
    assert run_id in str(raised.value)
    assert store.runs.get_run(child.id) is None
    assert all(e.seq != "1" for e in store.waitpoints.journal_view([run_id]).entries.get(run_id, []))


def test_awaiting_a_run_that_already_finished_creates_a_completed_waitpoint(store: Store) -> None:
    env = make_env(store)
    key = {"idempotency_key": "resize-7", "idempotency_key_expires_at": NOW + 3600}
    done = start_run(store, env, "resize", **key)
    finish(store, done, now=NOW + 1)
    parent = start_run(store, env, now=NOW + 2)

    # The idempotency key returns the finished run: there is nothing to wait for.
    entry, _ = store.waitpoints.record_entry(
        JournalEntry(parent.id, "0", "trigger_and_wait", "resize"),
        1,
        new_runs=[new_run(env, "resize", created_at=NOW + 3, **key)],
        await_runs=True,
        now=NOW + 3,
    )

    assert entry.result == {"runs": [{"id": done.id, "task_id": "resize", "is_cached": True}]}
    [wp] = [waitpoint_of(store, i) for i in entry.waitpoint_ids]
    assert (wp.kind, wp.status, wp.run_id, wp.owner_run_id, wp.completed_at) == (
        "RUN",
        "COMPLETED",
        done.id,
        parent.id,
        NOW + 3,
    )
    # Suspending on it queues the run again at once.
    assert suspend(store, parent, entry, now=NOW + 4) == RunStatus.QUEUED
    assert links(store, parent.id) == []


def test_awaiting_a_cached_run_still_in_progress_waits_for_it(store: Store) -> None:
    env = make_env(store)
    key = {"idempotency_key": "resize-8", "idempotency_key_expires_at": NOW + 3600}
    other_parent = start_run(store, env)
    first = trigger_and_wait(store, other_parent, "0", new_run(env, "resize", **key))
    parent = start_run(store, env)
    second = trigger_and_wait(store, parent, "0", new_run(env, "resize", **key))

    # Two waitpoints on the one child, one per waiting parent: its end releases both.
    assert first.result["runs"][0]["id"] == second.result["runs"][0]["id"]  # type: ignore[index]
    assert second.result["runs"][0]["is_cached"] is True  # type: ignore[index]
    assert first.waitpoint_ids != second.waitpoint_ids
    assert suspend(store, other_parent, first) == suspend(store, parent, second) == RunStatus.WAITING
    [child] = claim(store, env, ("resize",), now=NOW + 1)
    finish(store, child, now=NOW + 2)
    assert run_of(store, other_parent.id).status == run_of(store, parent.id).status == RunStatus.QUEUED


def test_a_waitpoint_idempotency_key_reuses_the_live_waitpoint(store: Store) -> None:
    env = make_env(store)
    key = {"idempotency_key": "nightly", "idempotency_key_expires_at": NOW + 100}
    run = start_run(store, env)
    first = record_wait(store, run, "0", NOW + 60, **key)

    # Another run (or another position) with the key waits on the same timer.
    other = start_run(store, env, now=NOW + 10)
    second, new = store.waitpoints.record_entry(
        JournalEntry(other.id, "0", "wait", "duration"),
        1,
        waitpoint=timer(env, other, NOW + 500, now=NOW + 10, **key),
        now=NOW + 10,
    )
    assert new is True
    assert second.waitpoint_ids == first.waitpoint_ids
    assert count(store, t.waitpoints) == 1
    assert waitpoint_of(store, first.waitpoint_ids[0]).resume_at == NOW + 60

    # The key of another kind of waitpoint is another key.
    token, reused = store.waitpoints.create_waitpoint(new_waitpoint(env, "TOKEN", **key), NOW + 10)
    assert reused is False and token.id not in first.waitpoint_ids
    again, reused = store.waitpoints.create_waitpoint(new_waitpoint(env, "TOKEN", created_at=NOW + 11, **key), NOW + 11)
    assert (again.id, reused) == (token.id, True)
    assert count(store, t.waitpoints) == 2


def test_an_expired_waitpoint_idempotency_key_creates_a_new_waitpoint(store: Store) -> None:
    env = make_env(store)
    run = start_run(store, env)
    old = record_wait(store, run, "0", NOW + 60, idempotency_key="nightly", idempotency_key_expires_at=NOW + 100)

    later = start_run(store, env, now=NOW + 100)  # the key expires at NOW + 100
    fresh = record_wait(
        store, later, "0", NOW + 160, now=NOW + 100, idempotency_key="nightly", idempotency_key_expires_at=NOW + 200
    )

    assert fresh.waitpoint_ids != old.waitpoint_ids
    new_wp = waitpoint_of(store, fresh.waitpoint_ids[0])
    assert (new_wp.idempotency_key, new_wp.resume_at, new_wp.owner_run_id) == ("nightly", NOW + 160, later.id)
    released = waitpoint_of(store, old.waitpoint_ids[0])
    assert (released.idempotency_key, released.status) == (None, "WAITING")


def test_a_waitpoint_key_without_expiry_never_expires(store: Store) -> None:
    env = make_env(store)
    first, _ = store.waitpoints.create_waitpoint(new_waitpoint(env, idempotency_key="forever"), NOW)
    again, reused = store.waitpoints.create_waitpoint(new_waitpoint(env, idempotency_key="forever"), NOW + 10**9)
    assert (again.id, reused) == (first.id, True)


def test_a_waitpoint_idempotency_key_is_scoped_to_its_environment(store: Store) -> None:
    env = make_env(store)
    prod = make_env(store, "prod")
    dev_token, _ = store.waitpoints.create_waitpoint(new_waitpoint(env, idempotency_key="k"), NOW)
    prod_token, reused = store.waitpoints.create_waitpoint(new_waitpoint(prod, idempotency_key="k"), NOW)
    assert reused is False and prod_token.id != dev_token.id


def test_waiting_for_an_existing_token_keeps_the_given_waitpoint_ids(store: Store) -> None:
    env = make_env(store)
    token, _ = store.waitpoints.create_waitpoint(new_waitpoint(env, timeout_at=NOW + 600), NOW)
    run = start_run(store, env)

    entry, new = store.waitpoints.record_entry(
        JournalEntry(run.id, "0", "wait_for_token", token.id, waitpoint_ids=[token.id]), 1, now=NOW + 1
    )

    assert (new, entry.waitpoint_ids) == (True, [token.id])
    assert store.waitpoints.entry_view(entry).waitpoints == {token.id: token}


# -- suspending ------------------------------------------------------------------------------------------


def test_suspending_moves_the_run_to_waiting_with_its_links(store: Store) -> None:
    env = make_env(store, concurrency_limit=1)
    run = start_run(store, env, worker_id="w1")
    entry = record_wait(store, run, "0", NOW + 60)
    other = insert(store, new_run(env, created_at=NOW + 1))[0]
    assert claim(store, env, now=NOW + 1) == []  # the environment's one slot is taken

    assert suspend_one(store, run.id, 1, "w1", (entry.seq,), NOW + 2) == RunStatus.WAITING

    waiting = run_of(store, run.id)
    assert (waiting.status, waiting.worker_id, waiting.lease_expires_at, waiting.attempt_count) == (
        RunStatus.WAITING,
        None,
        None,
        1,
    )
    assert waiting.updated_at == NOW + 2
    assert links(store, run.id) == entry.waitpoint_ids
    assert store.waitpoints.waiting_runs(entry.waitpoint_ids[0]) == [run.id]
    assert [(a.number, a.status) for a in store.runs.list_attempts(run.id)] == [(1, "WAITING")]
    assert resuming(store, run.id) is False
    # A waiting run holds no slot.
    assert [r.id for r in claim(store, env, now=NOW + 3)] == [other.id]


def test_suspending_on_resolved_waitpoints_queues_the_run_again_at_once(store: Store) -> None:
    env = make_env(store)
    run = start_run(store, env, priority=5.0)
    token, _ = store.waitpoints.create_waitpoint(new_waitpoint(env), NOW)
    assert store.waitpoints.resolve_waitpoint(token.id, "COMPLETED", NOW + 1, {"ok": 1}) is True
    entry = wait_for(store, run, "0", token, now=NOW + 1)

    assert suspend_one(store, run.id, 1, "w1", (entry.seq,), NOW + 2) == RunStatus.QUEUED

    queued = run_of(store, run.id)
    assert (queued.status, queued.worker_id, queued.lease_expires_at, queued.available_at) == (
        RunStatus.QUEUED,
        None,
        None,
        NOW + 2,
    )
    assert resuming(store, run.id) is True
    assert links(store, run.id) == []
    assert [r.id for r in claim(store, env, now=NOW + 2)] == [run.id]


def test_suspending_on_nothing_queues_the_run_again_at_once(store: Store) -> None:
    env = make_env(store)
    run = start_run(store, env)
    assert suspend_one(store, run.id, 1, "w1", (), NOW + 1) == RunStatus.QUEUED
    assert resuming(store, run.id) is True


def test_suspending_links_only_the_waitpoints_still_waiting(store: Store) -> None:
    env = make_env(store)
    run = start_run(store, env)
    done, _ = store.waitpoints.create_waitpoint(new_waitpoint(env), NOW)
    pending, _ = store.waitpoints.create_waitpoint(new_waitpoint(env), NOW)
    store.waitpoints.resolve_waitpoint(done.id, "COMPLETED", NOW, None)
    waits = (wait_for(store, run, "0", done).seq, wait_for(store, run, "1", pending).seq)

    assert suspend_one(store, run.id, 1, "w1", waits, NOW + 1) == RunStatus.WAITING
    assert links(store, run.id) == [pending.id]


@pytest.mark.parametrize("case", ["other_worker", "other_attempt", "not_executing"])
def test_a_stale_suspension_changes_nothing(store: Store, case: str) -> None:
    env = make_env(store)
    run = start_run(store, env, worker_id="w1")
    entry = record_wait(store, run, "0", NOW + 60)
    worker, attempt = "w1", 1
    if case == "other_worker":
        worker = "w2"
    elif case == "other_attempt":
        attempt = 2
    else:
        run = finish(store, run, now=NOW + 1)

    assert suspend_one(store, run.id, attempt, worker, (entry.seq,), NOW + 2) is None

    assert run_of(store, run.id) == run
    assert links(store, run.id) == []
    assert resuming(store, run.id) is False


# -- resuming when waitpoints resolve ----------------------------------------------------------------------


@pytest.mark.parametrize("final", ["COMPLETED", "FAILED", "CRASHED", "TIMED_OUT"])
def test_a_child_reaching_a_final_status_resumes_its_waiting_parent(store: Store, final: str) -> None:
    env = make_env(store)
    parent = start_run(store, env, priority=3.0)
    entry = trigger_and_wait(store, parent, "0", new_run(env, "resize"))
    assert suspend(store, parent, entry, now=NOW + 1) == RunStatus.WAITING
    [child] = claim(store, env, ("resize",), now=NOW + 2)

    finished = store.runs.update_run(
        child.id,
        expect_status="EXECUTING",
        expect_attempt=1,
        values={"status": final, "finished_at": NOW + 3},
        now=NOW + 3,
    )

    assert finished is not None
    resumed = run_of(store, parent.id)
    assert (resumed.status, resumed.available_at, resumed.updated_at) == (RunStatus.QUEUED, NOW + 3, NOW + 3)
    assert resuming(store, parent.id) is True
    assert links(store, parent.id) == []
    wp = waitpoint_of(store, entry.waitpoint_ids[0])
    assert (wp.status, wp.completed_at) == ("COMPLETED", NOW + 3)
    # The parent's claim order keeps its priority.
    later = insert(store, new_run(env, created_at=NOW + 3, available_at=NOW + 1))[0]
    assert [r.id for r in claim(store, env, now=NOW + 4)] == [parent.id, later.id]


def test_a_child_finishing_through_a_batch_of_updates_resumes_its_parent(store: Store) -> None:
    env = make_env(store)
    parent = start_run(store, env)
    entry = trigger_and_wait(store, parent, "0", new_run(env, "resize"))
    suspend(store, parent, entry, now=NOW + 1)
    [child] = claim(store, env, ("resize",), now=NOW + 2)

    applied = store.runs.update_runs(
        env, [RunChange(child.id, "EXECUTING", 1, {"status": "COMPLETED", "output": {"w": 640}})], NOW + 3
    )

    assert applied == [True]
    assert run_of(store, parent.id).status == RunStatus.QUEUED


def test_a_parent_waiting_on_two_children_resumes_after_both(store: Store) -> None:
    env = make_env(store)
    parent = start_run(store, env)
    entry = trigger_and_wait(store, parent, "0", new_run(env, "resize", created_at=NOW), new_run(env, "resize"))
    suspend(store, parent, entry, now=NOW + 1)
    first, second = claim(store, env, ("resize",), now=NOW + 2)

    finish(store, first, now=NOW + 3)
    assert run_of(store, parent.id).status == RunStatus.WAITING
    assert links(store, parent.id) == [entry.waitpoint_ids[1]]
    assert resuming(store, parent.id) is False

    finish(store, second, now=NOW + 4)
    assert run_of(store, parent.id).status == RunStatus.QUEUED
    assert links(store, parent.id) == []
    assert resuming(store, parent.id) is True


def test_a_child_finishing_before_its_parent_suspends_is_seen_by_the_suspension(store: Store) -> None:
    env = make_env(store)
    parent = start_run(store, env)
    entry = trigger_and_wait(store, parent, "0", new_run(env, "resize"))
    [child] = claim(store, env, ("resize",), now=NOW + 1)
    finish(store, child, now=NOW + 2)  # the parent is still EXECUTING: nothing to resume

    assert run_of(store, parent.id).status == RunStatus.EXECUTING
    assert waitpoint_of(store, entry.waitpoint_ids[0]).status == "COMPLETED"
    assert suspend(store, parent, entry, now=NOW + 3) == RunStatus.QUEUED


def test_resolve_due_waitpoints_fires_timers_and_times_out_tokens(store: Store) -> None:
    env = make_env(store)
    sleeper = start_run(store, env)
    nap = record_wait(store, sleeper, "0", NOW + 60)
    waiter = start_run(store, env)
    token, _ = store.waitpoints.create_waitpoint(new_waitpoint(env, timeout_at=NOW + 120), NOW)
    forever, _ = store.waitpoints.create_waitpoint(new_waitpoint(env), NOW)  # no timeout
    waits, _ = store.waitpoints.record_entry(
        JournalEntry(waiter.id, "0", "wait_for_token", token.id, waitpoint_ids=[token.id]), 1, now=NOW
    )
    suspend(store, sleeper, nap, now=NOW + 1)
    suspend(store, waiter, waits, now=NOW + 1)
    assert store.claims.next_due_time(NOW + 1) == NOW + 60

    assert store.waitpoints.resolve_due_waitpoints(NOW + 59.9) == 0
    assert run_of(store, sleeper.id).status == RunStatus.WAITING

    assert store.waitpoints.resolve_due_waitpoints(NOW + 60) == 1
    fired = waitpoint_of(store, nap.waitpoint_ids[0])
    assert (fired.status, fired.completed_at) == ("COMPLETED", NOW + 60)
    assert (run_of(store, sleeper.id).status, resuming(store, sleeper.id)) == (RunStatus.QUEUED, True)
    assert run_of(store, waiter.id).status == RunStatus.WAITING
    assert store.claims.next_due_time(NOW + 60) == NOW + 120

    assert store.waitpoints.resolve_due_waitpoints(NOW + 500) == 1
    timed_out = waitpoint_of(store, token.id)
    assert (timed_out.status, timed_out.completed_at, timed_out.output) == ("TIMED_OUT", NOW + 500, None)
    assert (run_of(store, waiter.id).status, resuming(store, waiter.id)) == (RunStatus.QUEUED, True)
    assert waitpoint_of(store, forever.id).status == "WAITING"
    assert store.waitpoints.resolve_due_waitpoints(NOW + 10**6) == 0
    assert store.claims.next_due_time(NOW + 500) is None


def test_completing_a_token_resumes_its_runs_once(store: Store) -> None:
    env = make_env(store)
    token, _ = store.waitpoints.create_waitpoint(new_waitpoint(env, timeout_at=NOW + 600), NOW)
    runs = [start_run(store, env) for _ in range(2)]
    for run in runs:
        entry, _ = store.waitpoints.record_entry(
            JournalEntry(run.id, "0", "wait_for_token", token.id, waitpoint_ids=[token.id]), 1, now=NOW
        )
        suspend(store, run, entry, now=NOW + 1)
    assert sorted(store.waitpoints.waiting_runs(token.id)) == sorted(r.id for r in runs)

    assert store.waitpoints.resolve_waitpoint(token.id, "COMPLETED", NOW + 2, {"approved": True}) is True

    done = waitpoint_of(store, token.id)
    assert (done.status, done.output, done.completed_at) == ("COMPLETED", {"approved": True}, NOW + 2)
    assert [run_of(store, r.id).status for r in runs] == [RunStatus.QUEUED] * 2
    assert store.waitpoints.waiting_runs(token.id) == []
    # Once resolved, it stays as it is.
    assert store.waitpoints.resolve_waitpoint(token.id, "COMPLETED", NOW + 3, {"approved": False}) is False
    assert store.waitpoints.resolve_due_waitpoints(NOW + 600) == 0
    assert waitpoint_of(store, token.id) == done


def test_a_run_waiting_on_a_timer_and_a_token_resumes_after_both(store: Store) -> None:
    env = make_env(store)
    run = start_run(store, env)
    nap = record_wait(store, run, "0", NOW + 60)
    token, _ = store.waitpoints.create_waitpoint(new_waitpoint(env), NOW)
    waits, _ = store.waitpoints.record_entry(
        JournalEntry(run.id, "1", "wait_for_token", token.id, waitpoint_ids=[token.id]), 1, now=NOW
    )
    assert suspend_one(store, run.id, 1, "w1", (nap.seq, waits.seq), NOW + 1) == RunStatus.WAITING

    store.waitpoints.resolve_waitpoint(token.id, "COMPLETED", NOW + 2)
    assert run_of(store, run.id).status == RunStatus.WAITING
    store.waitpoints.resolve_due_waitpoints(NOW + 60)
    assert run_of(store, run.id).status == RunStatus.QUEUED


def test_retrigger_children_replaces_the_failed_children_of_an_entry(store: Store) -> None:
    env = make_env(store)
    parent = start_run(store, env)
    entry = trigger_and_wait(store, parent, "0", new_run(env, "resize", created_at=NOW), new_run(env, "resize"))
    suspend(store, parent, entry, now=NOW + 1)
    ok, failed = claim(store, env, ("resize",), now=NOW + 2)
    finish(store, ok, now=NOW + 3)
    store.runs.update_run(
        failed.id, expect_status="EXECUTING", expect_attempt=1, values={"status": "FAILED"}, now=NOW + 3
    )
    assert run_of(store, parent.id).status == RunStatus.QUEUED
    fresh = new_run(env, "resize", created_at=NOW + 4, parent_run_id=parent.id)

    updated = store.waitpoints.retrigger_children(entry, 2, {failed.id: fresh}, NOW + 4)

    assert updated.attempt == 2
    assert updated.waitpoint_ids[0] == entry.waitpoint_ids[0]  # the child that completed stays
    wp = waitpoint_of(store, updated.waitpoint_ids[1])
    assert (wp.kind, wp.status, wp.run_id, wp.owner_run_id) == ("RUN", "WAITING", fresh.id, parent.id)
    assert updated.result == {
        "runs": [
            {"id": ok.id, "task_id": "resize", "is_cached": False},
            {"id": fresh.id, "task_id": "resize", "is_cached": False},
        ]
    }
    assert run_of(store, fresh.id).status == RunStatus.QUEUED
    assert store.waitpoints.journal_view([parent.id]).entries[parent.id] == [updated]


# -- claiming a resumed run ----------------------------------------------------------------------------


def test_claiming_a_resumed_run_continues_its_attempt(store: Store) -> None:
    env = make_env(store)
    run = start_run(store, env, worker_id="w1")
    entry = record_wait(store, run, "0", NOW + 60)
    suspend(store, run, entry, now=NOW + 1)
    store.waitpoints.resolve_due_waitpoints(NOW + 60)

    [resumed] = claim(store, env, worker_id="w2", now=NOW + 61)

    assert resumed == run_of(store, run.id)
    assert (resumed.status, resumed.attempt_count, resumed.worker_id, resumed.version) == (
        RunStatus.EXECUTING,
        1,
        "w2",
        "20270116.1",
    )
    assert (resumed.started_at, resumed.lease_expires_at) == (NOW, NOW + 61 + 30.0)
    [attempt] = store.runs.list_attempts(run.id)  # reopened, not a new one
    assert (attempt.number, attempt.status, attempt.worker_id, attempt.version, attempt.started_at) == (
        1,
        "EXECUTING",
        "w2",
        "20270116.1",
        NOW,
    )
    assert resuming(store, run.id) is False
    # It records on as attempt 1.
    _, new = store.waitpoints.record_entry(JournalEntry(run.id, "1", "step", "after"), 1, now=NOW + 62)
    assert new is True

    # A retry after that is a new attempt again.
    retried = store.runs.update_run(
        run.id,
        expect_status="EXECUTING",
        expect_attempt=1,
        values={"status": "QUEUED", "available_at": NOW + 70, "worker_id": None},
        attempt_values={"status": "FAILED", "finished_at": NOW + 63},
        now=NOW + 63,
    )
    assert retried is not None
    [again] = claim(store, env, worker_id="w3", now=NOW + 70)
    assert again.attempt_count == 2
    assert [(a.number, a.status, a.worker_id) for a in store.runs.list_attempts(run.id)] == [
        (1, "FAILED", "w2"),
        (2, "EXECUTING", "w3"),
    ]


def test_each_claim_is_a_new_execution_and_only_the_current_one_may_record_or_suspend(store: Store) -> None:
    env = make_env(store)
    run = start_run(store, env, worker_id="w1")
    assert run.executions == 1
    first = record_wait(store, run, "0", NOW + 60)
    suspend(store, run, first, now=NOW + 1)
    store.waitpoints.resolve_due_waitpoints(NOW + 60)
    [resumed] = claim(store, env, worker_id="w1", now=NOW + 61)  # the same worker, the same attempt
    assert (resumed.attempt_count, resumed.executions) == (1, 2)
    assert run_of(store, run.id).executions == 2

    # A late request of the first execution is refused; the current one goes through.
    with pytest.raises(ConflictError):
        store.waitpoints.record_entry(JournalEntry(run.id, "1", "step", "late"), 1, execution=1, now=NOW + 62)
    assert suspend_one(store, run.id, 1, "w1", (), NOW + 62, execution=1) is None
    assert run_of(store, run.id).status == RunStatus.EXECUTING
    _, new = store.waitpoints.record_entry(JournalEntry(run.id, "1", "step", "now"), 1, execution=2, now=NOW + 62)
    assert new is True
    assert suspend_one(store, run.id, 1, "w1", (), NOW + 63, execution=2) == RunStatus.QUEUED


def test_one_claim_takes_resumed_and_fresh_runs_together(store: Store) -> None:
    env = make_env(store)
    resumed = start_run(store, env, worker_id="w1")
    suspend(store, resumed, record_wait(store, resumed, "0", NOW + 60), now=NOW + 1)
    retried = start_run(store, env, worker_id="w1")
    store.runs.update_run(
        retried.id,
        expect_status="EXECUTING",
        expect_attempt=1,
        values={"status": "QUEUED", "available_at": NOW + 2, "worker_id": None},
        attempt_values={"status": "FAILED", "finished_at": NOW + 2},
        now=NOW + 2,
    )
    fresh = insert(store, new_run(env, created_at=NOW + 3))[0]
    store.waitpoints.resolve_due_waitpoints(NOW + 60)

    claimed = {r.id: r.attempt_count for r in claim(store, env, worker_id="w2", now=NOW + 61)}

    assert claimed == {resumed.id: 1, retried.id: 2, fresh.id: 1}
    for run_id, attempt in claimed.items():
        assert run_of(store, run_id).attempt_count == attempt
        assert [(a.number, a.status) for a in store.runs.list_attempts(run_id)][-1] == (attempt, "EXECUTING")
    assert len(store.runs.list_attempts(resumed.id)) == 1
    assert len(store.runs.list_attempts(retried.id)) == 2


# -- cancelling --------------------------------------------------------------------------------------------


def test_cancelling_a_waiting_run_drops_its_links_and_cancels_the_tokens_it_created(store: Store) -> None:
    env = make_env(store)
    run = start_run(store, env)
    nap = record_wait(store, run, "0", NOW + 600)
    made, _ = store.waitpoints.record_entry(
        JournalEntry(run.id, "1", "create_token", "token"),
        1,
        waitpoint=new_waitpoint(env, owner_run_id=run.id, timeout_at=NOW + 900),
        now=NOW,
    )
    used, _ = store.waitpoints.record_entry(
        JournalEntry(run.id, "2", "create_token", "token"),
        1,
        waitpoint=new_waitpoint(env, owner_run_id=run.id),
        now=NOW,
    )
    store.waitpoints.resolve_waitpoint(used.waitpoint_ids[0], "COMPLETED", NOW + 1, "done")  # resolved already
    children = trigger_and_wait(store, run, "3", new_run(env, "resize"))
    # Someone else's token it waits on, and another run waiting on the token it created.
    foreign, _ = store.waitpoints.create_waitpoint(new_waitpoint(env), NOW)
    store.waitpoints.record_entry(
        JournalEntry(run.id, "4", "wait_for_token", foreign.id, waitpoint_ids=[foreign.id]), 1, now=NOW + 2
    )
    bystander = start_run(store, env, now=NOW + 2)
    shared, _ = store.waitpoints.record_entry(
        JournalEntry(bystander.id, "0", "wait_for_token", made.waitpoint_ids[0], waitpoint_ids=made.waitpoint_ids),
        1,
        now=NOW + 2,
    )
    suspend(store, bystander, shared, now=NOW + 3)
    pending = [*nap.waitpoint_ids, *children.waitpoint_ids, foreign.id]
    assert suspend_one(store, run.id, 1, "w1", (nap.seq, children.seq, "4"), NOW + 3) == RunStatus.WAITING

    cancelled = store.runs.update_run(
        run.id,
        expect_status="WAITING",
        expect_attempt=1,
        values={"status": "CANCELED", "finished_at": NOW + 4},
        attempt_values={"status": "CANCELED", "finished_at": NOW + 4},
        now=NOW + 4,
    )

    assert cancelled is not None and cancelled.status == RunStatus.CANCELED
    assert links(store, run.id) == []
    for wp_id in pending:
        assert store.waitpoints.waiting_runs(wp_id) == []
    token = waitpoint_of(store, made.waitpoint_ids[0])
    assert (token.status, token.completed_at) == ("CANCELED", NOW + 4)
    # What it did not create, or what had resolved already, stays as it was.
    assert waitpoint_of(store, used.waitpoint_ids[0]).status == "COMPLETED"
    assert waitpoint_of(store, foreign.id).status == "WAITING"
    # The run waiting on the token it created is released (the token is CANCELED)...
    assert run_of(store, bystander.id).status == RunStatus.QUEUED
    # ...and its child is the engine's to cancel: the store leaves it queued.
    child_id = children.result["runs"][0]["id"]  # type: ignore[index]
    assert run_of(store, child_id).status == RunStatus.QUEUED
    assert [(a.number, a.status, a.finished_at) for a in store.runs.list_attempts(run.id)] == [(1, "CANCELED", NOW + 4)]
    # Nothing it waited on can bring it back.
    store.waitpoints.resolve_waitpoint(foreign.id, "COMPLETED", NOW + 5)
    store.waitpoints.resolve_due_waitpoints(NOW + 600)  # its own timer fires, or was cancelled: either way
    [child] = claim(store, env, ("resize",), now=NOW + 6)
    finish(store, child, now=NOW + 7)
    assert run_of(store, run.id).status == RunStatus.CANCELED


def test_cancelling_a_waiting_run_closes_its_suspended_attempt(store: Store) -> None:
    env = make_env(store)
    run = start_run(store, env)
    suspend(store, run, record_wait(store, run, "0", NOW + 600), now=NOW + 1)

    store.runs.update_run(
        run.id, expect_status="WAITING", expect_attempt=None, values={"status": "CANCELED"}, now=NOW + 2
    )

    assert [(a.number, a.status, a.finished_at) for a in store.runs.list_attempts(run.id)] == [(1, "CANCELED", NOW + 2)]


def test_a_timer_shared_through_its_key_outlives_the_cancelled_run_that_created_it(store: Store) -> None:
    env = make_env(store)
    key = {"idempotency_key": "nightly", "idempotency_key_expires_at": NOW + 3600}
    creator = start_run(store, env)
    first = record_wait(store, creator, "0", NOW + 60, **key)
    other = start_run(store, env)
    second = record_wait(store, other, "0", NOW + 60, **key)
    assert second.waitpoint_ids == first.waitpoint_ids
    suspend(store, creator, first, now=NOW + 1)
    suspend(store, other, second, now=NOW + 1)

    store.runs.update_run(
        creator.id, expect_status="WAITING", expect_attempt=None, values={"status": "CANCELED"}, now=NOW + 2
    )

    # The other run still waits for the time to come, not for its creator.
    assert run_of(store, other.id).status == RunStatus.WAITING
    assert waitpoint_of(store, first.waitpoint_ids[0]).status == "WAITING"
    assert store.waitpoints.resolve_due_waitpoints(NOW + 60) == 1
    assert run_of(store, other.id).status == RunStatus.QUEUED
    assert waitpoint_of(store, first.waitpoint_ids[0]).status == "COMPLETED"


def test_a_cancelled_child_resumes_its_waiting_parent(store: Store) -> None:
    env = make_env(store)
    parent = start_run(store, env)
    entry = trigger_and_wait(store, parent, "0", new_run(env, "resize"))
    suspend(store, parent, entry, now=NOW + 1)
    child_id = entry.result["runs"][0]["id"]  # type: ignore[index]

    assert store.runs.update_run(
        child_id, expect_status="QUEUED", expect_attempt=None, values={"status": "CANCELED"}, now=NOW + 2
    )

    assert waitpoint_of(store, entry.waitpoint_ids[0]).status == "COMPLETED"
    assert run_of(store, parent.id).status == RunStatus.QUEUED


# -- listing waitpoints ------------------------------------------------------------------------------------


def test_list_waitpoints_pages_newest_first(store: Store) -> None:
    env = make_env(store)
    tokens = [store.waitpoints.create_waitpoint(new_waitpoint(env, created_at=NOW + i), NOW + i)[0] for i in range(5)]
    twins = [store.waitpoints.create_waitpoint(new_waitpoint(env, created_at=NOW + 10), NOW + 10)[0] for _ in range(2)]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page, cursor = store.waitpoints.list_waitpoints(env, "TOKEN", limit=3, cursor=cursor)
        pages += 1
        seen += [wp.id for wp in page]
        if cursor is None:
            break

    # Newest first; at the same time, the larger id first (ids grow with creation).
    expected = [twins[1].id, twins[0].id, *(wp.id for wp in reversed(tokens))]
    assert seen == expected
    assert pages == 3
    page, cursor = store.waitpoints.list_waitpoints(env, "TOKEN", limit=7)
    assert ([wp.id for wp in page], cursor) == (expected, None)
    assert store.waitpoints.list_waitpoints(env, "TOKEN", limit=7)[0][0] == twins[1]


def test_list_waitpoints_filters_by_kind_environment_status_and_tag(store: Store) -> None:
    env = make_env(store)
    prod = make_env(store, "prod")
    run = start_run(store, env)
    record_wait(store, run, "0", NOW + 60)  # a DURATION waitpoint
    approval, _ = store.waitpoints.create_waitpoint(new_waitpoint(env, tags=["approval", "eu"]), NOW)
    review, _ = store.waitpoints.create_waitpoint(new_waitpoint(env, tags=["review"], created_at=NOW + 1), NOW + 1)
    late, _ = store.waitpoints.create_waitpoint(
        new_waitpoint(env, tags=["approval"], created_at=NOW + 2, timeout_at=NOW + 5), NOW
    )
    store.waitpoints.create_waitpoint(new_waitpoint(prod, tags=["approval"]), NOW)
    store.waitpoints.resolve_waitpoint(review.id, "COMPLETED", NOW + 3, "ok")
    store.waitpoints.resolve_due_waitpoints(NOW + 5)

    def ids(**kw: Any) -> list[str]:
        page, cursor = store.waitpoints.list_waitpoints(env, kw.pop("kind", "TOKEN"), **kw)
        assert cursor is None
        return [wp.id for wp in page]

    assert ids() == [late.id, review.id, approval.id]
    assert len(ids(kind="DURATION")) == 1
    assert ids(kind="RUN") == []
    assert ids(statuses=["WAITING"]) == [approval.id]
    assert ids(statuses=["COMPLETED", "TIMED_OUT"]) == [late.id, review.id]
    assert ids(tag="approval") == [late.id, approval.id]
    assert ids(tag="eu") == [approval.id]
    assert ids(tag="approval", statuses=["WAITING"]) == [approval.id]
    assert ids(tag="appro") == []  # a whole tag, not a part of one
    assert ids(tag="nothing") == []


def test_the_tag_filter_matches_whole_tags_exactly(store: Store) -> None:
    """Literally and case-sensitively, on both backends (as run tags are). At 43304ce it was an
    unescaped LIKE: `_` and `%` were wildcards, and SQLite ignored case."""
    env = make_env(store)
    tagged = {
        tag: store.waitpoints.create_waitpoint(new_waitpoint(env, tags=[tag]), NOW)[0].id
        for tag in ("userX1", "user_1", "50%off", "Approval", "a/b", "c\\d", 'say "hi"')
    }

    def ids(tag: str) -> list[str]:
        return [wp.id for wp in store.waitpoints.list_waitpoints(env, "TOKEN", tag=tag)[0]]

    for tag, wp_id in tagged.items():
        assert ids(tag) == [wp_id], tag
    for tag in ("user%", "5%f", "approval", "APPROVAL", "a/", "c\\", "say", "_serX1"):
        assert ids(tag) == [], tag


def test_a_waitpoint_stores_every_field(store: Store) -> None:
    env = make_env(store)
    wp = new_waitpoint(
        env,
        "TOKEN",
        owner_run_id="run_x",
        timeout_at=NOW + 60,
        tags=["ü-tag", "b"],
        idempotency_key="k",
        idempotency_key_expires_at=NOW + 100,
    )
    created, reused = store.waitpoints.create_waitpoint(wp, NOW)
    assert (created, reused) == (wp, False)
    assert store.waitpoints.get_waitpoint(wp.id, env) == wp
    assert store.waitpoints.get_waitpoint(wp.id, make_env(store, "prod")) is None
    assert store.waitpoints.get_waitpoint("waitpoint_missing", None) is None


# -- server secrets ----------------------------------------------------------------------------------------


def test_a_secret_is_made_once(store: Store) -> None:
    made: list[str] = []

    def make() -> str:
        made.append(f"secret-{len(made)}")
        return made[-1]

    first = store.environments.secret("token_signing_key", make, NOW)
    assert first == "secret-0"
    assert store.environments.secret("token_signing_key", make, NOW + 1) == first
    assert made == ["secret-0"]
    assert store.environments.secret("other", make, NOW) == "secret-1"
    assert store.environments.secret("token_signing_key", make, NOW + 2) == first


# -- races -------------------------------------------------------------------------------------------------


def test_two_children_finishing_at_once_resume_their_parent(store: Store) -> None:
    """The last link must not be missed when both children of a batch finish together (wakeups.py
    locks the waiting run before counting its links)."""
    env = make_env(store)
    for i in range(10):
        now = NOW + 10 * i
        parent = start_run(store, env, now=now)
        kids = [new_run(env, "resize", created_at=now) for _ in range(2)]
        entry = trigger_and_wait(store, parent, "0", *kids, now=now)
        suspend(store, parent, entry, now=now)
        first, second = claim(store, env, ("resize",), now=now)

        outcomes = at_once(partial(finish, store, first, now + 1), partial(finish, store, second, now + 1))

        assert errors(outcomes) == []

        assert run_of(store, parent.id).status == RunStatus.QUEUED, i
        assert links(store, parent.id) == []


def test_a_suspension_racing_a_token_completion_never_strands_the_run(store: Store) -> None:
    """Whichever commits first, the run ends QUEUED: the completion sees the links, or the
    suspension sees the token resolved."""
    env = make_env(store)
    seen: set[RunStatus] = set()
    for i in range(10):
        now = NOW + 10 * i
        run = start_run(store, env, now=now)
        token, _ = store.waitpoints.create_waitpoint(new_waitpoint(env, created_at=now), now)
        store.waitpoints.record_entry(
            JournalEntry(run.id, "0", "wait_for_token", token.id, waitpoint_ids=[token.id]), 1, now=now
        )

        suspended, resolved = outcomes = at_once(
            partial(suspend_one, store, run.id, 1, "w1", ("0",), now + 1),
            partial(store.waitpoints.resolve_waitpoint, token.id, "COMPLETED", now + 1, {"i": i}),
        )

        assert errors(outcomes) == []
        assert resolved is True
        seen.add(suspended)
        assert (run_of(store, run.id).status, resuming(store, run.id)) == (RunStatus.QUEUED, True), i
        assert links(store, run.id) == []
        assert waitpoint_of(store, token.id).status == "COMPLETED"
    assert seen <= {RunStatus.WAITING, RunStatus.QUEUED}


def test_cancelling_a_waiting_parent_while_its_child_finishes(store: Store) -> None:
    """Both at once (the engine cancels a parent, then its children, while a worker completes the
    child): each applies, in either order, without a database error. (At 43304ce PostgreSQL
    deadlocked here: the cancel locked the parent's row, then its links and the RUN waitpoint it
    owns; the child finishing locked that waitpoint, then the link, then the parent's row.)"""
    env = make_env(store)
    failures: list[str] = []
    for i in range(15):
        now = NOW + 10 * i
        parent = start_run(store, env, now=now)
        entry = trigger_and_wait(store, parent, "0", new_run(env, "resize", created_at=now), now=now)
        suspend(store, parent, entry, now=now)
        [child] = claim(store, env, ("resize",), now=now)

        def cancel(parent: Run = parent, now: float = now) -> None:
            for status in ("WAITING", "QUEUED"):  # QUEUED: the child finished first and resumed it
                if store.runs.update_run(
                    parent.id, expect_status=status, expect_attempt=None, values={"status": "CANCELED"}, now=now + 1
                ):
                    return

        failures += errors(at_once(cancel, partial(finish, store, child, now + 1)))
        if failures:
            break
        assert run_of(store, parent.id).status == RunStatus.CANCELED
        assert run_of(store, child.id).status == RunStatus.COMPLETED
        assert links(store, parent.id) == []
        assert waitpoint_of(store, entry.waitpoint_ids[0]).status in ("COMPLETED", "CANCELED")
    assert failures == []


def test_cancelling_a_waiting_run_while_its_token_is_completed(store: Store) -> None:
    """The same race with a token the run waits on (the completion locks the token, then the link,
    then the run; the cancel starts from the run's row)."""
    env = make_env(store)
    for i in range(15):
        now = NOW + 10 * i
        run = start_run(store, env, now=now)
        token, _ = store.waitpoints.create_waitpoint(new_waitpoint(env, created_at=now), now)
        entry, _ = store.waitpoints.record_entry(
            JournalEntry(run.id, "0", "wait_for_token", token.id, waitpoint_ids=[token.id]), 1, now=now
        )
        suspend(store, run, entry, now=now)

        def cancel(run: Run = run, now: float = now) -> None:
            for status in ("WAITING", "QUEUED"):  # QUEUED: the token was completed first
                if store.runs.update_run(
                    run.id, expect_status=status, expect_attempt=None, values={"status": "CANCELED"}, now=now + 1
                ):
                    return

        outcomes = at_once(
            cancel, partial(store.waitpoints.resolve_waitpoint, token.id, "COMPLETED", now + 1, {"i": i})
        )

        assert errors(outcomes) == [], i
        assert run_of(store, run.id).status == RunStatus.CANCELED
        assert waitpoint_of(store, token.id).status == "COMPLETED"
        assert links(store, run.id) == []


def test_suspend_runs_records_timers_and_suspends_a_batch_and_a_stale_item_leaves_nothing(store: Store) -> None:
    env = make_env(store)
    first, second = start_run(store, env), start_run(store, env)
    items = [
        Suspension(
            first.id,
            1,
            first.worker_id or "",
            first.executions,
            ("0",),
            ((JournalEntry(first.id, "0", "wait", "duration"), timer(env, first, NOW + 60)),),
        ),
        Suspension(  # another worker's claim: stale
            second.id,
            1,
            "someone-else",
            second.executions,
            ("0",),
            ((JournalEntry(second.id, "0", "wait", "duration"), timer(env, second, NOW + 60)),),
        ),
    ]
    assert store.waitpoints.suspend_runs(items, NOW + 1) == [RunStatus.WAITING, None]
    assert run_of(store, first.id).status == RunStatus.WAITING and len(links(store, first.id)) == 1
    assert run_of(store, second.id).status == RunStatus.EXECUTING
    assert store.waitpoints.journal_view([second.id]).entries == {}  # its timer and entry were rolled back
    assert store.waitpoints.resolve_due_waitpoints(NOW + 61) == 1
    assert run_of(store, first.id).status == RunStatus.QUEUED and resuming(store, first.id)


def test_open_waitpoints_are_what_a_waiting_run_still_waits_for(store: Store) -> None:
    env = make_env(store)
    parent = start_run(store, env)
    entry = trigger_and_wait(store, parent, "0", new_run(env, "resize", created_at=NOW), new_run(env, "resize"))
    assert store.waitpoints.open_waitpoints(parent.id) == []  # not suspended yet: it waits for nothing
    suspend(store, parent, entry, now=NOW + 1)
    first, second = claim(store, env, ("resize",), now=NOW + 2)
    assert [(w.kind, w.run_id) for w in store.waitpoints.open_waitpoints(parent.id)] == [
        ("RUN", first.id),
        ("RUN", second.id),
    ]

    finish(store, first, now=NOW + 3)
    assert [w.run_id for w in store.waitpoints.open_waitpoints(parent.id)] == [second.id]
    finish(store, second, now=NOW + 4)
    assert store.waitpoints.open_waitpoints(parent.id) == []
