"""The runner's journal (``hightide.sdk.journal.RunJournal``) on a real event loop, without HTTP: a
stand-in answers the recording requests (``POST /api/v1/runs/{id}/journal``) with entries in the
shape the server returns. Replay and non-determinism, positions per asyncio task, settling (in
place or by suspending), and suspension across ``asyncio.gather`` and around steps in progress."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest

from hightide.errors import ConflictError, HightideConnectionError, NonDeterminismError, RunSuspendedSignal
from hightide.sdk import journal as journal_module
from hightide.sdk.journal import RunJournal, Suspended, perform
from hightide.sdk.steps import step
from hightide.sdk.waits import wait

THRESHOLD = 5.0
RUN_ID = "run_01journal"


def entry(seq: str, kind: str, name: str, *, done: bool = True, result: Any = None, **extra: Any) -> dict[str, Any]:
    """An entry as the server hands it back (resolved as far as it is now)."""
    return {"seq": seq, "kind": kind, "name": name, "done": done, "result": result, **extra}


class Server:
    """Stands in for the journal endpoint: records each request and answers it as the server would
    for a new position: a step is done with its value, a wait is pending until ``resume_at`` (or
    done if that passed), a token wait or a trigger-and-wait is pending."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.delays: dict[str, float] = {}  # position -> how long its request takes
        self.failures: list[BaseException] = []  # raised by the next requests, in order

    async def request(self, method: str, path: str, *, json: dict[str, Any]) -> dict[str, Any]:
        assert (method, path) == ("POST", f"/api/v1/runs/{RUN_ID}/journal")
        self.requests.append(json)
        await asyncio.sleep(self.delays.get(json["seq"], 0))
        if self.failures:
            raise self.failures.pop(0)
        seq, kind, name = json["seq"], json["kind"], json["name"]
        if kind == "step":
            return entry(seq, kind, name, result=json["result"])
        if kind == "wait":
            return entry(seq, kind, name, done=json["resume_at"] <= time.time(), resume_at=json["resume_at"])
        if kind == "wait_for_token":
            return entry(seq, kind, name, done=False, result={"ok": False, "output": None, "error": None})
        if kind == "trigger_and_wait":
            return entry(seq, kind, name, done=False, result={"runs": [{"id": f"run_child{seq}", "task_id": name}]})
        raise AssertionError(f"unexpected kind {kind}")

    def recorded(self) -> list[tuple[str, str, str]]:
        return [(r["seq"], r["kind"], r["name"]) for r in self.requests]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Server:
    fake = Server()
    monkeypatch.setattr(journal_module, "default_client", lambda: SimpleNamespace(session=fake))
    return fake


@contextmanager
def executing(journal: RunJournal) -> Iterator[RunJournal]:
    """The journal of the run executing here, as the runner sets it."""
    token = journal_module.current.set(journal)
    try:
        yield journal
    finally:
        journal_module.current.reset(token)


def make(entries: list[dict[str, Any]] | None = None, threshold: float = THRESHOLD) -> RunJournal:
    return RunJournal(RUN_ID, 1, entries or [], threshold)


async def run(journal: RunJournal, fn: Callable[[], Awaitable[Any]]) -> Any:
    """Execute ``fn()`` as the runner does: the journal current and numbering the tasks it starts."""
    loop = asyncio.get_running_loop()
    loop.set_task_factory(journal.task_factory)
    try:
        with executing(journal):
            return await journal.run(fn())
    finally:
        loop.set_task_factory(None)


# -- take and replaying -------------------------------------------------------------------------------------


async def test_take_returns_the_recorded_entries_in_call_order() -> None:
    recorded = [entry("0", "step", "charge", result={"id": "ch_1"}), entry("1", "wait", "duration", resume_at=1.0)]
    journal = make(recorded)

    assert journal.take("step", "charge") == ("0", recorded[0])
    assert journal.take("wait", "duration") == ("1", recorded[1])
    assert journal.take("step", "email") == ("2", None)  # past the end: to be recorded
    assert journal.take("step", "email") == ("3", None)


@pytest.mark.parametrize(
    ("kind", "name"), [("trigger_and_wait", "charge"), ("step", "refund"), ("wait_for_token", "tok_1")]
)
async def test_take_refuses_another_operation_at_a_recorded_position(kind: str, name: str) -> None:
    journal = make([entry("0", "wait", "duration"), entry("1", "step", "charge", result=1)])
    journal.take("wait", "duration")

    with pytest.raises(NonDeterminismError) as raised:
        journal.take(kind, name)

    message = str(raised.value)
    assert f"{kind} {name!r}" in message  # what the code calls now
    assert "step 'charge'" in message  # what the journal recorded there
    assert RUN_ID in message and "#1" in message
    assert raised.value.details == {"seq": "1", "recorded": ["step", "charge"], "called": [kind, name]}


async def test_replaying_lasts_until_every_recorded_position_is_reached() -> None:
    journal = make([entry("0", "step", "a"), entry("1", "wait", "duration"), entry("2", "step", "b")])
    states = [journal.replaying]
    for kind, name in [("step", "a"), ("wait", "duration"), ("step", "b"), ("step", "c")]:
        journal.take(kind, name)
        states.append(journal.replaying)
    assert states == [True, True, True, False, False]

    assert make().replaying is False  # a first execution replays nothing


async def test_entries_may_come_in_any_order() -> None:
    journal = make([entry("1", "step", "b", result=2), entry("0", "step", "a", result=1)])
    assert [journal.take("step", n)[1]["result"] for n in ("a", "b")] == [1, 2]  # type: ignore[index]
    assert journal.replaying is False


async def test_replaying_lasts_until_the_recorded_positions_of_every_task_are_reached() -> None:
    journal = make([entry("0", "step", "a"), entry("t0/0", "step", "b"), entry("t1/0", "step", "c")])
    states: list[bool] = []

    async def branch(name: str) -> None:
        journal.take("step", name)
        states.append(journal.replaying)

    async def task() -> None:
        journal.take("step", "a")
        states.append(journal.replaying)
        await asyncio.gather(branch("b"), branch("c"))

    await run(journal, task)
    assert states == [True, True, False]


# -- settle ------------------------------------------------------------------------------------------------


async def test_a_done_entry_settles_at_once() -> None:
    journal = make()
    done = entry("0", "trigger_and_wait", "resize", result={"runs": []})
    started = time.monotonic()
    assert await journal.settle("0", done) is done
    assert time.monotonic() - started < 0.05


async def test_a_timer_shorter_than_the_threshold_sleeps_in_place() -> None:
    journal = make()
    resume_at = time.time() + 0.2
    pending = entry("0", "wait", "duration", done=False, resume_at=resume_at)

    async def task() -> dict[str, Any]:
        return await journal.settle("0", pending)

    settled = await run(journal, task)

    assert time.time() >= resume_at
    assert settled == {**pending, "done": True}


async def test_a_timer_already_due_settles_at_once() -> None:
    journal = make()
    started = time.monotonic()
    settled = await journal.settle("0", entry("0", "wait", "duration", done=False, resume_at=time.time() - 10))
    assert settled["done"] is True
    assert time.monotonic() - started < 0.05


@pytest.mark.parametrize(
    "pending",
    [
        entry("0", "wait", "duration", done=False, resume_at=time.time() + 3600),
        entry("0", "wait_for_token", "tok_1", done=False, timeout_at=None),
        entry("0", "trigger_and_wait", "resize", done=False, result={"runs": [{"id": "run_child"}]}),
    ],
    ids=["long-timer", "token", "child"],
)
async def test_a_longer_wait_suspends_the_run(pending: dict[str, Any]) -> None:
    journal = make([pending], threshold=1.0)
    after: list[str] = []

    async def task() -> str:
        try:
            seq, recorded = journal.take(pending["kind"], pending["name"])
            assert recorded is not None
            await journal.settle(seq, recorded)
            after.append("continued")
            return "finished"
        finally:
            after.append("unwound")  # the task's finally blocks run as it stops

    with pytest.raises(Suspended) as raised:
        await run(journal, task)

    assert raised.value.waiting_on == ["0"]
    assert after == ["unwound"]


async def test_the_suspension_reaches_the_task_as_an_uncatchable_signal() -> None:
    journal = make([entry("0", "wait_for_token", "tok_1", done=False)])
    seen: list[str] = []

    async def task() -> None:
        seq, recorded = journal.take("wait_for_token", "tok_1")
        assert recorded is not None
        try:
            await journal.settle(seq, recorded)
        except Exception:  # what task code catches: not the suspension
            seen.append("caught")
        except RunSuspendedSignal:
            seen.append("signal")
            raise

    with pytest.raises(Suspended):
        await run(journal, task)
    assert seen == ["signal"]


async def test_run_returns_the_result_or_raises_the_error_when_nothing_suspends() -> None:
    journal = make([entry("0", "step", "a", result=41)])

    async def ok() -> int:
        _, recorded = journal.take("step", "a")
        assert recorded is not None
        return int(recorded["result"]) + 1

    assert await run(journal, ok) == 42

    async def broken() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await run(make(), broken)


# -- recording through the API --------------------------------------------------------------------------------


async def test_new_operations_are_recorded_and_recorded_ones_replayed(server: Server) -> None:
    journal = make([entry("0", "step", "charge", result={"id": "ch_1"})])

    async def task() -> list[Any]:
        charged = await step("charge", lambda: pytest.fail("a recorded step must not run again"))
        emailed = await step("email", lambda: {"sent": True})
        await wait.for_(seconds=0.05)  # short: sleeps in place
        return [charged, emailed]

    assert await run(journal, task) == [{"id": "ch_1"}, {"sent": True}]

    assert server.recorded() == [("1", "step", "email"), ("2", "wait", "duration")]
    sent = {"attempt": 1, "seq": "1", "kind": "step", "name": "email", "result": {"sent": True}}
    assert server.requests[0].items() >= sent.items()
    assert set(journal.entries) == {"0", "1", "2"}  # what a replay in this process would find
    assert journal.entries["1"]["result"] == {"sent": True}


async def test_recording_rides_out_a_server_restart(server: Server) -> None:
    server.failures = [HightideConnectionError("server restarting")]
    journal = make()

    async def task() -> Any:
        return (await perform("step", "now", {"result": 7}, "step()"))["result"]

    assert await run(journal, task) == 7
    assert server.recorded() == [("0", "step", "now"), ("0", "step", "now")]  # the same position again


async def test_a_refused_recording_fails_the_task_at_once(server: Server) -> None:
    server.failures = [ConflictError("run is CANCELED, not executing attempt 1")]
    journal = make()

    async def task() -> Any:
        return await perform("step", "now", {"result": 7}, "step()")

    with pytest.raises(ConflictError):
        await run(journal, task)
    assert len(server.requests) == 1


async def test_durable_operations_need_a_journal() -> None:
    with pytest.raises(RuntimeError, match="inside a task"):
        await perform("wait", "duration", {"resume_at": 0}, "wait.for_()")


# -- positions per task ----------------------------------------------------------------------------------------


async def test_positions_follow_the_tasks_not_the_order_in_which_branches_finish(server: Server) -> None:
    """Branch a's first step is slow on the first execution, so branch b records both of its steps
    first; on replay everything returns at once, in another order. Each call still finds its entry."""
    server.delays = {"t0/0": 0.15}
    calls: list[str] = []

    def body(name: str) -> Callable[[], str]:
        def fn() -> str:
            calls.append(name)
            return f"{name}-result"

        return fn

    async def branch(first: str, second: str) -> list[str]:
        return [await step(first, body(first)), await step(second, body(second))]

    async def task() -> list[list[str]]:
        return await asyncio.gather(branch("a1", "a2"), branch("b1", "b2"))

    first = make()
    expected = [["a1-result", "a2-result"], ["b1-result", "b2-result"]]
    assert await run(first, task) == expected
    assert [r[0] for r in server.recorded()] == ["t0/0", "t1/0", "t1/1", "t0/1"]  # b2 before a2

    replay = make(list(first.entries.values()))
    calls.clear()
    assert await run(replay, task) == expected
    assert calls == []  # nothing ran again
    assert len(server.requests) == 4  # nothing recorded again
    assert replay.replaying is False


async def test_tasks_started_inside_tasks_have_nested_positions(server: Server) -> None:
    journal = make()

    async def leaf(name: str) -> str:
        return await step(name, lambda: name)

    async def inner() -> None:
        await asyncio.gather(leaf("x"), leaf("y"))

    async def task() -> None:
        await step("top", lambda: 0)
        await asyncio.gather(inner(), leaf("z"))
        await asyncio.create_task(leaf("w"))

    await run(journal, task)
    assert sorted(r[:2] for r in server.recorded()) == [
        ("0", "step"),
        ("t0/t0/0", "step"),
        ("t0/t1/0", "step"),
        ("t1/0", "step"),
        ("t2/0", "step"),
    ]
    assert {r[0]: r[2] for r in server.recorded()} == {
        "0": "top",
        "t0/t0/0": "x",
        "t0/t1/0": "y",
        "t1/0": "z",
        "t2/0": "w",
    }


async def test_tasks_the_recording_starts_do_not_shift_the_run_s_positions(server: Server) -> None:
    """The HTTP client may start tasks of its own while recording: they are not the run's."""
    original = server.request

    async def request(method: str, path: str, *, json: dict[str, Any]) -> dict[str, Any]:
        await asyncio.create_task(asyncio.sleep(0))
        return await original(method, path, json=json)

    server.request = request  # type: ignore[method-assign]
    journal = make()

    async def task() -> None:
        await step("first", lambda: 1)
        await asyncio.gather(step("a", lambda: 2), step("b", lambda: 3))

    await run(journal, task)
    assert sorted(r[0] for r in server.recorded()) == ["0", "t0/0", "t1/0"]


# -- suspending across gather and around steps -----------------------------------------------------------------


async def test_gather_of_three_waits_suspends_once_with_all_three_positions(server: Server) -> None:
    # The first recording comes back at once and asks to suspend; the other two are still in flight.
    server.delays = {"t1/0": 0.1, "t2/0": 0.2}
    journal = make(threshold=1.0)
    reached: list[str] = []

    async def branch(kind: str, name: str, body: dict[str, Any]) -> None:
        settled = await perform(kind, name, body, "test")
        reached.append(settled["seq"])  # never: each waits

    async def task() -> None:
        await asyncio.gather(
            branch("wait", "duration", {"resume_at": time.time() + 3600}),
            branch("wait_for_token", "tok_1", {"token_id": "tok_1"}),
            branch("trigger_and_wait", "resize", {"items": [{"payload": {}}]}),
        )

    started = time.monotonic()
    with pytest.raises(Suspended) as raised:
        await run(journal, task)

    # Each branch of the gather is a task of its own, numbered in argument order.
    assert raised.value.waiting_on == ["t0/0", "t1/0", "t2/0"]
    assert time.monotonic() - started >= 0.2  # it waited for the recordings in flight
    assert server.recorded() == [("t1/0", "wait_for_token", "tok_1"), ("t2/0", "trigger_and_wait", "resize")]
    # The long timer is recorded with the suspension itself: one request fewer.
    assert [(r["seq"], r["kind"]) for r in raised.value.records] == [("t0/0", "wait")]
    assert reached == []
    assert all(task.done() for task in asyncio.all_tasks() if task is not asyncio.current_task())


async def test_a_replay_of_pending_operations_suspends_on_all_of_them() -> None:
    journal = make(
        [
            entry("0", "step", "a", result=1),
            entry("t0/0", "wait_for_token", "tok_1", done=False),
            entry("t1/0", "wait_for_token", "tok_2", done=False),
        ]
    )

    async def branch(token: str) -> None:
        await perform("wait_for_token", token, {"token_id": token}, "test")

    async def task() -> None:
        await perform("step", "a", {"result": 1}, "test")
        await asyncio.gather(branch("tok_1"), branch("tok_2"))

    with pytest.raises(Suspended) as raised:
        await run(journal, task)
    assert raised.value.waiting_on == ["t0/0", "t1/0"]


async def test_a_step_in_progress_delays_the_suspension_until_it_ends(server: Server) -> None:
    journal = make(threshold=1.0)
    log: list[str] = []

    async def slow_charge() -> dict[str, str]:
        log.append("charge started")
        await asyncio.sleep(0.3)
        log.append("charge ended")
        return {"id": "ch_1"}

    async def task() -> None:
        await asyncio.gather(
            step("charge", slow_charge),
            wait.for_token("tok_1"),  # asks to suspend while the step runs
        )

    with pytest.raises(Suspended) as raised:
        await run(journal, task)

    assert log == ["charge started", "charge ended"]  # not cut
    assert raised.value.waiting_on == ["t1/0"]  # the step is recorded, not waited on
    assert server.recorded() == [("t1/0", "wait_for_token", "tok_1"), ("t0/0", "step", "charge")]
    assert journal.entries["t0/0"]["result"] == {"id": "ch_1"}


async def test_a_busy_block_delays_the_suspension_until_it_ends() -> None:
    journal = make([entry("t1/0", "wait_for_token", "tok_1", done=False)], threshold=1.0)
    log: list[str] = []

    async def work() -> None:
        async with journal.busy():
            await asyncio.sleep(0)  # let the other branch ask to suspend first
            log.append("busy")
            await asyncio.sleep(0.2)
            log.append("done")

    async def task() -> None:
        await asyncio.gather(work(), perform("wait_for_token", "tok_1", {"token_id": "tok_1"}, "test"))

    started = time.monotonic()
    with pytest.raises(Suspended) as raised:
        await run(journal, task)

    assert log == ["busy", "done"]
    assert time.monotonic() - started >= 0.2
    assert raised.value.waiting_on == ["t1/0"]


async def test_work_outside_busy_blocks_is_cut_by_the_suspension() -> None:
    journal = make([entry("t1/0", "wait_for_token", "tok_1", done=False)], threshold=1.0)
    log: list[str] = []

    async def work() -> None:
        try:
            await asyncio.sleep(30)
            log.append("done")
        finally:
            log.append("cut")

    async def task() -> None:
        await asyncio.gather(work(), perform("wait_for_token", "tok_1", {"token_id": "tok_1"}, "test"))

    started = time.monotonic()
    with pytest.raises(Suspended):
        await run(journal, task)
    await asyncio.sleep(0)  # the cancelled branch unwinds on the loop's next turn
    assert log == ["cut"]
    assert time.monotonic() - started < 5


async def test_a_durable_operation_inside_a_step_is_an_error_not_a_hang(server: Server) -> None:
    """Inside a step there is no journal (the step as a whole is recorded). At 43304ce a long wait
    there left the step busy for ever: run() neither suspended nor failed."""
    journal = make(threshold=1.0)

    async def inner() -> None:
        await wait.for_(seconds=3600)

    async def task() -> None:
        await step("outer", inner)

    with pytest.raises(RuntimeError, match="not inside a step"):
        await asyncio.wait_for(run(journal, task), 5.0)
    assert server.requests == []  # neither the wait nor the failed step was recorded


async def test_once_a_suspension_is_decided_no_durable_operation_starts(server: Server) -> None:
    journal = make([entry("0", "wait_for_token", "tok_1", done=False)], threshold=1.0)
    seen: list[str] = []

    async def task() -> None:
        try:
            await perform("wait_for_token", "tok_1", {"token_id": "tok_1"}, "test")
        finally:  # unwinding: this step runs again, for real, on the replay
            try:
                await step("cleanup", lambda: "cleaned")
                seen.append("recorded")
            except RunSuspendedSignal:
                seen.append("refused")
                raise

    with pytest.raises(Suspended) as raised:
        await run(journal, task)
    assert raised.value.waiting_on == ["0"]
    assert seen == ["refused"]
    assert server.requests == []


async def test_recordings_name_the_execution(server: Server) -> None:
    journal = RunJournal(RUN_ID, 2, [], THRESHOLD, execution=5)

    async def task() -> None:
        await step("a", lambda: 1)

    await run(journal, task)
    assert (server.requests[0]["attempt"], server.requests[0]["execution"]) == (2, 5)
