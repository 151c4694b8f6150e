"""Self-hosting: ``hightide server`` + ``hightide keys create`` + ``hightide worker``, and what
happens to a run when its worker's machine dies."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

from hightide import Client, Run
from tests.acceptance.conftest import Background, Server, kill_pids, pid_alive, runner_pids
from tests.support import assert_eventually, wait_finished, written_number

TIMEOUT = 30.0

NAPPER = """
    import asyncio
    import os
    from pathlib import Path

    from hightide import Context, task


    @task(id="napper", retry={"max_attempts": 3, "min_timeout": 0.1, "max_timeout": 0.2})
    async def napper(payload: dict, ctx: Context) -> str:
        Path(payload["marker"]).write_text(str(os.getpid()))
        await asyncio.sleep(2)
        return f"rested on attempt {ctx.attempt.number}"
"""


def test_a_run_survives_its_worker_being_killed(
    project: Callable[..., Path],
    server: Callable[..., Server],
    worker: Callable[..., Background],
    tmp_path: Path,
) -> None:
    root = project({"trigger/napper.py": NAPPER})
    hosted = server("--lease-seconds", "2")
    key = hosted.create_key("dev")
    assert key.startswith("ht_dev_")
    first = worker(root, hosted.api_url, key, "--concurrency", "1")
    marker = tmp_path / "napper.pid"

    with Client(api_url=hosted.api_url, secret_key=key) as client:
        handle = client.trigger("napper", {"marker": str(marker)})
        runner = assert_eventually(
            lambda: written_number(marker),
            timeout=TIMEOUT,
            what="the first attempt to start",
        )
        assert client.runs.retrieve(handle.id).status == "EXECUTING"

        # The machine dies: the supervisor and its runners go at once, without a word to the server.
        assert runner in runner_pids(root)
        first.kill_group()
        kill_pids(runner_pids(root))
        first.wait(timeout=10)
        assert_eventually(lambda: not pid_alive(runner), timeout=10, what=f"runner {runner} to die")
        marker.unlink()

        worker(root, hosted.api_url, key, "--concurrency", "1")

        run = wait_finished(client, handle.id, TIMEOUT)

    assert run.status == "COMPLETED"
    assert run.output == "rested on attempt 2"
    assert run.attempt_count == 2
    lost, retried = run.attempts
    assert lost.status == "FAILED"
    assert lost.error["name"] == "WorkerLost"
    assert "worker" in lost.error["message"] and "lease" in lost.error["message"]
    assert retried.status == "COMPLETED"


def test_a_worker_paused_past_its_lease_loses_the_run_and_carries_on(
    project: Callable[..., Path],
    server: Callable[..., Server],
    worker: Callable[..., Background],
    tmp_path: Path,
) -> None:
    # A laptop lid closed, a VM paused: the worker freezes, its lease lapses, the run is retried.
    # When it wakes, its late result for the lost attempt must be discarded, not crash it.
    root = project({"trigger/napper.py": NAPPER.replace("asyncio.sleep(2)", "asyncio.sleep(0.5)")})
    hosted = server("--lease-seconds", "2")
    key = hosted.create_key("dev")
    frozen = worker(root, hosted.api_url, key, "--concurrency", "1")
    marker = tmp_path / "napper.pid"

    with Client(api_url=hosted.api_url, secret_key=key) as client:
        handle = client.trigger("napper", {"marker": str(marker)})
        assert_eventually(marker.exists, timeout=TIMEOUT, what="the first attempt to start")
        os.kill(frozen.pid, signal.SIGSTOP)
        try:

            def retried() -> Run:
                run = client.runs.retrieve(handle.id)
                assert run.status == "QUEUED" and run.attempts[0].status == "FAILED", run.status
                return run

            lost = assert_eventually(retried, timeout=TIMEOUT, interval=0.2)
        finally:
            os.kill(frozen.pid, signal.SIGCONT)
        assert lost.attempts[0].error["name"] == "WorkerLost"

        run = wait_finished(client, handle.id, TIMEOUT)

    assert run.status == "COMPLETED"
    assert run.output == "rested on attempt 2"
    assert frozen.running, frozen.output()
    assert "Traceback" not in frozen.output()


SLEEPER = """
    import asyncio
    import os
    from pathlib import Path

    from hightide import task


    @task(id="sleeper")
    async def sleeper(payload: dict) -> str:
        Path(payload["marker"]).write_text(str(os.getpid()))
        await asyncio.sleep(payload["seconds"])
        return "slept"
"""


def test_stopping_a_worker_lets_runs_finish_then_hands_the_rest_back(
    project: Callable[..., Path],
    server: Callable[..., Server],
    worker: Callable[..., Background],
    tmp_path: Path,
) -> None:
    root = project({"trigger/sleeper.py": SLEEPER})
    hosted = server()
    key = hosted.create_key("dev")
    with Client(api_url=hosted.api_url, secret_key=key) as client:
        # Within the grace period: the run finishes, then the worker exits.
        patient = worker(root, hosted.api_url, key, "--concurrency", "1", "--shutdown-grace", "20")
        marker = tmp_path / "first.pid"
        handle = client.trigger("sleeper", {"marker": str(marker), "seconds": 2})
        assert_eventually(marker.exists, timeout=TIMEOUT, what="the run to start")
        os.kill(patient.pid, signal.SIGTERM)
        assert patient.wait(timeout=TIMEOUT) == 0
        run = client.runs.retrieve(handle.id)
        assert run.status == "COMPLETED" and run.attempt_count == 1

        # Past the grace period: its runner is stopped and the run is back in the queue, not
        # cancelled, with no attempt used.
        hasty = worker(root, hosted.api_url, key, "--concurrency", "1", "--shutdown-grace", "0.5")
        marker = tmp_path / "second.pid"
        handle = client.trigger("sleeper", {"marker": str(marker), "seconds": 30})
        runner = assert_eventually(lambda: written_number(marker), timeout=TIMEOUT)
        os.kill(hasty.pid, signal.SIGTERM)
        assert hasty.wait(timeout=TIMEOUT) == 0
        run = client.runs.retrieve(handle.id)
        assert (run.status, run.attempt_count, [a.status for a in run.attempts]) == ("QUEUED", 1, ["RELEASED"])
        assert_eventually(lambda: not pid_alive(runner), timeout=10, what=f"runner {runner} to stop")


LOST = """
    import asyncio
    import json
    import os
    from pathlib import Path

    from hightide import Context, task


    def note(payload: dict, what: str, ctx: Context, error: Exception) -> None:
        with open(payload["notes"], "a") as notes:
            notes.write(json.dumps([what, ctx.run.id, ctx.attempt.number, os.getpid(), str(error)]) + "\\n")


    def on_failure(payload: dict, ctx: Context, error: Exception) -> None:
        note(payload, "on_failure", ctx, error)


    def on_complete(payload: dict, ctx: Context, result: object) -> None:
        note(payload, "on_complete", ctx, result.error)


    @task(id="doomed", retry={"max_attempts": 1}, on_failure=on_failure, on_complete=on_complete)
    async def doomed(payload: dict, ctx: Context) -> None:
        Path(payload["marker"]).write_text(str(os.getpid()))
        await asyncio.sleep(60)
"""


def test_a_run_lost_with_its_whole_worker_gets_its_final_hooks_on_another(
    project: Callable[..., Path],
    server: Callable[..., Server],
    worker: Callable[..., Background],
    tmp_path: Path,
) -> None:
    """The machine dies with the run's last attempt: the run is CRASHED when its lease lapses, and
    its on_failure and on_complete run once, on the worker that is left, in a fresh runner."""
    root = project({"trigger/doomed.py": LOST})
    hosted = server("--lease-seconds", "2")
    key = hosted.create_key("dev")
    first = worker(root, hosted.api_url, key, "--concurrency", "1")
    marker, notes = tmp_path / "doomed.pid", tmp_path / "notes.jsonl"

    with Client(api_url=hosted.api_url, secret_key=key) as client:
        handle = client.trigger("doomed", {"marker": str(marker), "notes": str(notes)})
        runner = assert_eventually(
            lambda: written_number(marker),
            timeout=TIMEOUT,
            what="the attempt to start",
        )
        first.kill_group()
        kill_pids(runner_pids(root))
        first.wait(timeout=10)
        assert_eventually(lambda: not pid_alive(runner), timeout=10, what=f"runner {runner} to die")

        run = wait_finished(client, handle.id, TIMEOUT)
        assert run.status == "CRASHED" and run.error["name"] == "WorkerLost"
        assert not notes.exists(), "no worker was left to run the hooks yet"

        second = worker(root, hosted.api_url, key, "--concurrency", "1")

        def noted() -> list:
            lines = [json.loads(line) for line in notes.read_text().splitlines()] if notes.exists() else []
            assert len(lines) == 2, lines
            return lines

        hooks = assert_eventually(noted, timeout=TIMEOUT, what="on_failure and on_complete on the second worker")
        assert [h[0] for h in hooks] == ["on_failure", "on_complete"]
        assert {h[1] for h in hooks} == {handle.id} and {h[2] for h in hooks} == {1}
        assert all("WorkerLost" in h[4] or "lease" in h[4] for h in hooks), hooks
        assert runner not in {h[3] for h in hooks}  # a fresh runner, on the worker that is left
        second.check_running()
