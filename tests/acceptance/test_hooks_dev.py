"""Hooks, middleware and locals under ``hightide dev``, as a developer sees them: each hook appends a
line to a file named by the run's payload, so what ran, in which order and how often is on disk.
Global hooks and middleware live in ``trigger/init.py``; waits longer than 2 s suspend the run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from hightide import Run
from tests.acceptance.conftest import Dev
from tests.support import assert_eventually

TIMEOUT = 40.0  # a loaded 2-core machine runs this suite

CONFIG = """
    from hightide import define_config

    config = define_config(dirs=["trigger"], checkpoint_threshold=2)
"""

INIT = """
    import json
    import time
    from pathlib import Path

    from hightide import locals, tasks

    db = locals.create("db")


    def note(payload, line):
        if isinstance(payload, dict) and "log" in payload:
            with Path(payload["log"]).open("a") as out:
                out.write(json.dumps(line) + "\\n")


    @tasks.middleware
    async def connection(payload, ctx, next):
        locals.set(db, f"conn-{ctx.attempt.number}")
        note(payload, ["global mw before", ctx.attempt.number])
        try:
            return await next()
        finally:
            note(payload, ["global mw after", ctx.attempt.number])


    @tasks.on_start_attempt
    def started(payload, ctx):
        note(payload, ["start", ctx.attempt.number, time.time()])


    @tasks.on_failure
    async def failed(payload, ctx, error):
        note(payload, ["global on_failure", ctx.attempt.number, str(error)])
"""

TASKS = """
    import asyncio
    import os

    from hightide import RetryDecision, locals, task, wait

    from trigger.init import db, note

    QUICK = {"max_attempts": 3, "min_timeout": 0.1, "max_timeout": 0.2, "randomize": False}


    def on_success(payload, output):
        note(payload, ["on_success", output])


    def on_failure(payload, ctx, error):
        note(payload, ["on_failure", ctx.attempt.number, str(error)])


    def on_complete(payload, result):
        note(payload, ["on_complete", result.ok])


    @task(id="flaky", retry=QUICK, on_success=on_success, on_failure=on_failure, on_complete=on_complete)
    async def flaky(payload: dict, ctx) -> str:
        if ctx.attempt.number < payload["succeed_on"]:
            raise RuntimeError(f"attempt {ctx.attempt.number} failed")
        return "fine"


    def broken_success(payload, output):
        raise ValueError("the success hook broke")


    @task(id="success-hook-breaks", on_success=broken_success, on_complete=on_complete)
    async def success_hook_breaks(payload: dict) -> str:
        return "kept"


    def catch(payload, error, retry):
        note(payload, ["catch_error", retry.attempt, retry.will_retry])
        if payload["decision"] == "skip":
            return RetryDecision.skip()
        return RetryDecision.after(payload["after"])


    @task(id="decides", retry={**QUICK, "max_attempts": 2}, catch_error=catch, on_failure=on_failure)
    async def decides(payload: dict) -> None:
        raise RuntimeError("nope")


    async def task_mw(payload, ctx, next):
        note(payload, ["task mw before", locals.get(db)])
        result = await next()
        note(payload, ["task mw after", result])
        return result


    @task(id="layers", middleware=[task_mw], on_success=lambda payload: note(payload, ["on_success", locals.get(db)]))
    async def layers(payload: dict) -> str:
        note(payload, ["run", locals.get(db)])
        return locals.get(db)


    @task(id="dies", retry={**QUICK, "max_attempts": 1}, on_failure=on_failure, on_complete=on_complete)
    async def dies(payload: dict) -> None:
        os._exit(1)  # the runner process dies: the run is CRASHED


    @task(id="too-slow", retry={**QUICK, "max_attempts": 1}, max_duration=1, on_failure=on_failure)
    async def too_slow(payload: dict) -> None:
        await asyncio.sleep(60)  # killed after max_duration: TIMED_OUT


    async def on_cancel(payload, ctx):
        await asyncio.sleep(0.1)  # async hooks may await
        note(payload, ["on_cancel", ctx.attempt.number, locals.get(db)])


    @task(id="cancellable", on_cancel=on_cancel, on_failure=on_failure, on_complete=on_complete)
    async def cancellable(payload: dict) -> None:
        note(payload, ["run"])
        await asyncio.sleep(60)


    @task(id="child")
    async def child(payload: dict) -> int:
        return payload["n"] + 1


    def on_wait(payload, wait):
        note(payload, ["on_wait", wait.type, wait.position])


    def on_resume(payload, wait):
        note(payload, ["on_resume", wait.type, wait.position])


    @task(id="waits", on_wait=on_wait, on_resume=on_resume)
    async def waits(payload: dict) -> int:
        note(payload, ["run"])
        await wait.for_(seconds=3)  # suspends
        await wait.for_(seconds=1.5)  # sleeps in place
        result = await child.trigger_and_wait({"n": 1})  # suspends
        return result.unwrap()
"""


def lines(path: Path) -> list[list[object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def finished(dev: Dev, run_id: str) -> Run:
    def done() -> Run:
        run = dev.client.runs.retrieve(run_id)
        assert run.is_finished, f"{run_id} is {run.status}"
        return run

    return assert_eventually(done, timeout=TIMEOUT, interval=0.1)


def start(project: Callable[..., Path], dev: Callable[..., Dev]) -> Dev:
    root = project({"hightide.config.py": CONFIG, "trigger/init.py": INIT, "trigger/hooked.py": TASKS})
    (root / "trigger" / "example.py").unlink(missing_ok=True)
    return dev(root)


def test_hooks_around_retries_failures_and_decisions(
    project: Callable[..., Path], dev: Callable[..., Dev], tmp_path: Path
) -> None:
    server = start(project, dev)
    logs = {name: tmp_path / f"{name}.jsonl" for name in ("retried", "failed", "broken", "skip", "after")}
    retried = server.client.trigger("flaky", {"log": str(logs["retried"]), "succeed_on": 2})
    failed = server.client.trigger("flaky", {"log": str(logs["failed"]), "succeed_on": 99})
    broken = server.client.trigger("success-hook-breaks", {"log": str(logs["broken"])})
    skip = server.client.trigger("decides", {"log": str(logs["skip"]), "decision": "skip"})
    after = server.client.trigger("decides", {"log": str(logs["after"]), "decision": "after", "after": 3})

    # Retried, then succeeded: no on_failure (the failure was not final), one on_success.
    run = finished(server, retried.id)
    assert (run.status, run.attempt_count) == ("COMPLETED", 2)
    names = [line[0] for line in lines(logs["retried"])]
    assert names.count("start") == 2 and "on_failure" not in names and "global on_failure" not in names
    assert names[-3:] == ["on_success", "on_complete", "global mw after"]

    # Failed for good: on_failure once, after the final attempt, with its error; global hook too.
    run = finished(server, failed.id)
    assert (run.status, run.attempt_count) == ("FAILED", 3)
    seen = lines(logs["failed"])
    assert [line for line in seen if line[0].endswith("on_failure")] == [
        ["global on_failure", 3, "attempt 3 failed"],
        ["on_failure", 3, "attempt 3 failed"],
    ]
    assert [line for line in seen if line[0] == "on_complete"] == [["on_complete", False]]

    # An error in on_success is a log line of the run; the run is COMPLETED with its output.
    run = finished(server, broken.id)
    assert (run.status, run.output) == ("COMPLETED", "kept")
    assert ["on_complete", True] in lines(logs["broken"])
    messages = [r.message for r in server.client.runs.logs(broken.id)]
    assert any("on_success hook" in m and "the success hook broke" in m for m in messages), messages

    # catch_error: skip fails at once, with attempts left; after(3) moves the retry.
    run = finished(server, skip.id)
    assert (run.status, run.attempt_count) == ("FAILED", 1)
    assert [line for line in lines(logs["skip"]) if line[0] in ("catch_error", "on_failure")] == [
        ["catch_error", 1, True],
        ["on_failure", 1, "nope"],
    ]
    run = finished(server, after.id)
    assert (run.status, run.attempt_count) == ("FAILED", 2)
    starts = [line[2] for line in lines(logs["after"]) if line[0] == "start"]
    assert len(starts) == 2 and starts[1] - starts[0] >= 3.0, starts  # not the 0.1 s backoff
    assert [line for line in lines(logs["after"]) if line[0] == "catch_error"] == [
        ["catch_error", 1, True],
        ["catch_error", 2, False],
    ]


def test_middleware_order_locals_and_waits(
    project: Callable[..., Path], dev: Callable[..., Dev], tmp_path: Path
) -> None:
    server = start(project, dev)
    layered_log, waits_log = tmp_path / "layers.jsonl", tmp_path / "waits.jsonl"
    layered = server.client.trigger("layers", {"log": str(layered_log)})
    waited = server.client.trigger("waits", {"log": str(waits_log)})

    run = finished(server, layered.id)
    assert (run.status, run.output) == ("COMPLETED", "conn-1")
    assert [line[:2] for line in lines(layered_log)] == [
        ["global mw before", 1],
        ["task mw before", "conn-1"],
        ["start", 1],  # hooks run inside the middleware: what it sets up is there for them
        ["run", "conn-1"],
        ["on_success", "conn-1"],
        ["task mw after", "conn-1"],
        ["global mw after", 1],
    ]

    # Two suspensions and one wait in place: each wait announced once and resumed once, although
    # the run executed three times from the top (the replays call no hooks for earlier waits).
    run = finished(server, waited.id)
    assert (run.status, run.output, run.attempt_count) == ("COMPLETED", 2, 1)
    seen = lines(waits_log)
    assert [line for line in seen if line[0] in ("on_wait", "on_resume")] == [
        ["on_wait", "duration", "0"],
        ["on_resume", "duration", "0"],
        ["on_wait", "duration", "1"],
        ["on_resume", "duration", "1"],
        ["on_wait", "task", "2"],
        ["on_resume", "task", "2"],
    ]
    assert [line[0] for line in seen].count("run") == 3  # executed three times: replayed twice


def test_on_failure_runs_for_crashed_and_timed_out_runs(
    project: Callable[..., Path], dev: Callable[..., Dev], tmp_path: Path
) -> None:
    server = start(project, dev)
    died_log, slow_log = tmp_path / "died.jsonl", tmp_path / "slow.jsonl"
    died = server.client.trigger("dies", {"log": str(died_log)})
    slow = server.client.trigger("too-slow", {"log": str(slow_log)})

    assert finished(server, died.id).status == "CRASHED"
    # The runner that ran it is gone: the hooks run in a fresh one, once, with the failure.
    expected = "RunnerCrashed: the runner process exited with code 1"

    def crashed_hooks() -> bool:
        seen = [line for line in lines(died_log) if line[0] != "start" and "mw" not in line[0]]
        assert seen == [["global on_failure", 1, expected], ["on_failure", 1, expected], ["on_complete", False]]
        return True

    assert_eventually(crashed_hooks, timeout=TIMEOUT)

    assert finished(server, slow.id).status == "TIMED_OUT"

    def timed_out_hooks() -> bool:
        seen = [line for line in lines(slow_log) if line[0].endswith("on_failure")]
        assert [line[0] for line in seen] == ["global on_failure", "on_failure"], seen
        assert all("MaxDurationExceeded" in str(line[2]) for line in seen), seen
        return True

    assert_eventually(timed_out_hooks, timeout=TIMEOUT)


def test_on_cancel_runs_when_a_run_is_cancelled(
    project: Callable[..., Path], dev: Callable[..., Dev], tmp_path: Path
) -> None:
    server = start(project, dev)
    log = tmp_path / "cancel.jsonl"
    handle = server.client.trigger("cancellable", {"log": str(log)})
    assert_eventually(lambda: ["run"] in lines(log), timeout=TIMEOUT)
    server.client.runs.cancel(handle.id)

    assert finished(server, handle.id).status == "CANCELED"

    def cancel_hook_ran() -> bool:
        seen = [line for line in lines(log) if line[0] in ("on_cancel", "on_failure", "on_complete")]
        assert seen == [["on_cancel", 1, "conn-1"]], lines(log)  # with the run's locals; not a failure
        return True

    assert_eventually(cancel_hook_ran, timeout=TIMEOUT)
