"""``hightide init`` + ``hightide dev``, driven the way a developer drives them: real processes,
triggers from an app, Ctrl-C in the terminal, edits to the task files."""

from __future__ import annotations

import sqlite3
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from hightide import Run, RunHandle
from tests.acceptance.conftest import (
    STARTUP_TIMEOUT,
    Background,
    Dev,
    hightide,
    pid_alive,
    run_app_script,
    runner_pids,
)
from tests.support import assert_eventually, free_port

TIMEOUT = 30.0  # generous: a loaded 2-core machine runs this suite

SLEEPER = """
    import asyncio
    import os
    from pathlib import Path

    from hightide import task


    @task(id="sleeper", retry={"max_attempts": 1})
    async def sleeper(payload: dict) -> str:
        # Tell the test which process runs this attempt, then sleep far longer than any test waits.
        Path(payload["marker"]).write_text(str(os.getpid()))
        await asyncio.sleep(payload.get("seconds", 120))
        return "woke up"
"""


GREETING = """
    from hightide import task


    @task(id="greet")
    async def greet(payload: dict) -> str:
        return {text!r}
"""


def wait_for_status(dev: Dev, run_id: str, *statuses: str, timeout: float = TIMEOUT) -> Run:
    def reached() -> Run:
        run = dev.client.runs.retrieve(run_id)
        assert run.status in statuses, f"{run_id} is {run.status}, waiting for {statuses}"
        return run

    return assert_eventually(reached, timeout=timeout, interval=0.1)


def wait_for_pid_file(path: Path) -> int:
    def written() -> int:
        assert path.exists() and path.read_text(), f"{path} not written yet"
        return int(path.read_text())

    return assert_eventually(written, timeout=TIMEOUT, interval=0.1)


def test_init_then_dev_runs_hello_world_triggered_from_an_app(tmp_path: Path, dev: Callable[..., Dev]) -> None:
    root = tmp_path / "app"
    root.mkdir()
    first = hightide("init", cwd=root)  # other tests copy what it wrote once
    assert first.returncode == 0, first.stderr
    assert ".hightide/" in (root / ".gitignore").read_text().splitlines()

    again = hightide("init", cwd=root)
    assert again.returncode != 0
    message = again.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "already exist" in message and "--force" in message
    assert "Traceback" not in again.stdout + again.stderr

    server = dev(root)
    # The app knows nothing but the project folder: the SDK finds the dev server in .hightide/dev.env.
    result = run_app_script(
        root,
        """
        import asyncio
        import json

        from hightide import runs
        from trigger.example import hello_world


        async def main() -> None:
            handle = await hello_world.trigger({"name": "Ada"})
            run = await runs.poll(handle.id, interval=0.1, timeout=30)
            print(json.dumps({"id": handle.id, "status": run.status, "output": run.output}))


        asyncio.run(main())
        """,
    )
    assert result["id"].startswith("run_")
    assert result["status"] == "COMPLETED"
    assert result["output"] == {"message": "Hello, Ada!"}
    # ...and the terminal running `hightide dev` shows the run and its log line.
    shown = server.proc.wait_for_output(f"{result['id']}  #1  COMPLETED")
    assert f"{result['id']}  #1  Saying hello" in shown
    # Each line about the run itself ends with its page on the dashboard; its log lines do not.
    page = f"{server.api_url}/projects/default/env/dev/runs/{result['id']}"
    lines = [line for line in shown.splitlines() if f"{result['id']}  #1  " in line]
    assert any("EXECUTING" in line and line.endswith(f"  {page}") for line in lines), shown
    assert any("COMPLETED" in line and line.endswith(f"  {page}") for line in lines), shown
    assert all(page not in line for line in lines if "Saying hello" in line), shown


def test_a_failing_task_is_retried_until_it_succeeds(project: Callable[..., Path], dev: Callable[..., Dev]) -> None:
    root = project(
        {
            "trigger/flaky.py": """
            from hightide import Context, task


            @task(id="flaky", retry={"max_attempts": 3, "min_timeout": 0.1, "max_timeout": 0.2})
            async def flaky(payload: dict, ctx: Context) -> dict:
                if ctx.attempt.number < 3:
                    raise RuntimeError(f"boom on attempt {ctx.attempt.number}")
                return {"succeeded_on": ctx.attempt.number}
            """
        }
    )
    server = dev(root)
    handle = server.client.trigger("flaky", {})

    run = wait_for_status(server, handle.id, "COMPLETED", "FAILED")
    assert run.status == "COMPLETED"
    assert run.output == {"succeeded_on": 3}
    assert run.attempt_count == 3
    assert [a.status for a in run.attempts] == ["FAILED", "FAILED", "COMPLETED"]
    assert [a.error["message"] for a in run.attempts[:2]] == ["boom on attempt 1", "boom on attempt 2"]
    assert all(a.error["name"] == "RuntimeError" for a in run.attempts[:2])


def test_a_runner_that_dies_is_a_failed_attempt_and_the_run_is_retried(
    project: Callable[..., Path], dev: Callable[..., Dev]
) -> None:
    root = project(
        {
            "trigger/fragile.py": """
            import os
            import signal

            from hightide import Context, task


            @task(id="fragile", retry={"max_attempts": 3, "min_timeout": 0.1, "max_timeout": 0.2})
            async def fragile(payload: dict, ctx: Context) -> str:
                if ctx.attempt.number == 1:
                    os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's OOM killer would
                return f"survived on attempt {ctx.attempt.number}"
            """
        }
    )
    server = dev(root)
    handle = server.client.trigger("fragile", {})

    run = wait_for_status(server, handle.id, "COMPLETED", "FAILED", "CRASHED")
    assert run.status == "COMPLETED"
    assert run.output == "survived on attempt 2"
    assert run.attempt_count == 2
    first = run.attempts[0]
    assert first.status == "FAILED"
    assert "runner process" in first.error["message"]
    assert "SIGKILL" in first.error["message"]


def start_sleeping_run(
    project: Callable[..., Path], dev: Callable[..., Dev], tmp_path: Path
) -> tuple[Dev, RunHandle, int]:
    """`hightide dev` with a run executing: returns dev, the run's handle and its runner's pid."""
    root = project({"trigger/sleeper.py": SLEEPER})
    server = dev(root)
    marker = tmp_path / "sleeper.pid"
    handle = server.client.trigger("sleeper", {"marker": str(marker)})
    return server, handle, wait_for_pid_file(marker)


def test_cancel_stops_an_executing_run_and_its_process(
    project: Callable[..., Path], dev: Callable[..., Dev], tmp_path: Path
) -> None:
    server, handle, pid = start_sleeping_run(project, dev, tmp_path)
    assert server.client.runs.retrieve(handle.id).status == "EXECUTING"

    cancelled = server.client.runs.cancel(handle.id)

    assert cancelled.status == "CANCELED"
    assert_eventually(lambda: not pid_alive(pid), timeout=TIMEOUT, what=f"runner {pid} to be stopped")
    run = server.client.runs.retrieve(handle.id)
    assert run.status == "CANCELED"
    assert run.output is None
    assert [a.status for a in run.attempts] == ["CANCELED"]
    server.proc.wait_for_output(f"{handle.id}  #1  CANCELED")


def test_a_delayed_run_waits_for_its_delay(project: Callable[..., Path], dev: Callable[..., Dev]) -> None:
    root = project()
    server = dev(root)
    handle = server.client.trigger("hello-world", {"name": "later"}, delay="2s")

    first = server.client.runs.retrieve(handle.id)
    assert first.status == "DELAYED"
    assert first.created_at is not None and first.delay_until is not None
    assert 1.5 <= (first.delay_until - first.created_at).total_seconds() <= 2.5

    run = wait_for_status(server, handle.id, "COMPLETED")
    assert run.output == {"message": "Hello, later!"}
    assert run.started_at is not None and run.started_at >= first.delay_until


def test_an_idempotency_key_returns_the_same_run_and_runs_it_once(
    project: Callable[..., Path], dev: Callable[..., Dev], tmp_path: Path
) -> None:
    root = project(
        {
            "trigger/charge.py": """
            from pathlib import Path

            from hightide import task


            @task(id="charge")
            async def charge(payload: dict) -> str:
                with Path(payload["ledger"]).open("a") as ledger:
                    ledger.write(f"charged {payload['order']}\\n")
                return "charged"
            """
        }
    )
    server = dev(root)
    ledger = tmp_path / "ledger.txt"
    payload = {"order": "order-42", "ledger": str(ledger)}

    first = server.client.trigger("charge", payload, idempotency_key="order-42")
    second = server.client.trigger("charge", payload, idempotency_key="order-42")

    assert second.id == first.id
    assert (first.is_cached, second.is_cached) == (False, True)
    wait_for_status(server, first.id, "COMPLETED")
    third = server.client.trigger("charge", payload, idempotency_key="order-42")
    assert third.id == first.id and third.is_cached
    assert [run.id for run in server.client.runs.list(task="charge")] == [first.id]
    assert ledger.read_text().splitlines() == ["charged order-42"]


def test_editing_a_task_file_hot_reloads_it(project: Callable[..., Path], dev: Callable[..., Dev]) -> None:
    root = project({"trigger/greet.py": GREETING.format(text="hello from v1")})
    server = dev(root)
    first = server.client.trigger("greet", {})
    assert wait_for_status(server, first.id, "COMPLETED").output == "hello from v1"

    (root / "trigger" / "greet.py").write_text(textwrap.dedent(GREETING.format(text="hello from the second version")))
    server.proc.wait_for_output("registered", count=2)

    second = server.client.trigger("greet", {})
    run = wait_for_status(server, second.id, "COMPLETED")
    assert run.output == "hello from the second version"


def test_dev_started_with_a_broken_task_file_says_why_and_loads_it_once_fixed(
    project: Callable[..., Path], background: Callable[..., Background]
) -> None:
    root = project({"trigger/greet.py": "from hightide import task\n\nimport no_such_module_here\n"})
    port = free_port()
    proc = background("dev", cwd=root, env={"HIGHTIDE_PORT": str(port), "HIGHTIDE_MAX_CONCURRENT_RUNS": "2"})
    out = proc.wait_for_output("dev imports the tasks again when a file changes", timeout=STARTUP_TIMEOUT)
    assert "the tasks could not be imported" in out and "no_such_module_here" in out
    assert "greet.py" in out  # the user is shown where
    assert "hightide/cli/dev.py" not in out  # dev itself did not crash
    proc.check_running()

    (root / "trigger" / "greet.py").write_text(textwrap.dedent(GREETING.format(text="fixed")))
    proc.wait_for_output("registered", timeout=STARTUP_TIMEOUT)
    server = Dev(proc, root, port)
    try:
        run = server.client.runs.poll(server.client.trigger("greet", {}).id, timeout=60)
    finally:
        server.close_client()
    assert (run.status, run.output) == ("COMPLETED", "fixed")


def test_a_run_after_a_hot_reload_records_the_new_version(
    project: Callable[..., Path], dev: Callable[..., Dev]
) -> None:
    root = project({"trigger/greet.py": GREETING.format(text="hello from v1")})
    server = dev(root)
    first = wait_for_status(server, server.client.trigger("greet", {}).id, "COMPLETED")

    (root / "trigger" / "greet.py").write_text(textwrap.dedent(GREETING.format(text="hello from the second version")))
    server.proc.wait_for_output("registered", count=2)

    second = wait_for_status(server, server.client.trigger("greet", {}).id, "COMPLETED")
    assert second.output == "hello from the second version"
    assert second.version != first.version


def test_ctrl_c_cancels_the_executing_run_and_exits_quickly(
    project: Callable[..., Path], dev: Callable[..., Dev], tmp_path: Path
) -> None:
    server, handle, pid = start_sleeping_run(project, dev, tmp_path)
    server.close_client()

    began = time.monotonic()
    server.proc.interrupt()
    code = server.proc.wait(timeout=20)
    took = time.monotonic() - began

    assert code == 0, server.output()
    assert took < 10, f"hightide dev took {took:.1f}s to exit after Ctrl-C"
    assert "Traceback" not in server.output()
    assert not pid_alive(pid)
    assert runner_pids(server.root) == []
    with sqlite3.connect(server.root / ".hightide" / "dev.db") as db:
        (status,) = db.execute("SELECT status FROM runs WHERE id = ?", (handle.id,)).fetchone()
        attempts = db.execute("SELECT status FROM attempts WHERE run_id = ?", (handle.id,)).fetchall()
    assert status == "CANCELED"
    assert attempts == [("CANCELED",)]


def test_runs_still_queued_when_dev_stops_run_when_it_starts_again(
    project: Callable[..., Path], dev: Callable[..., Dev], tmp_path: Path
) -> None:
    root = project(
        {
            "trigger/one_at_a_time.py": """
            import asyncio

            from hightide import task


            @task(id="one-at-a-time", queue={"concurrency_limit": 1})
            async def one_at_a_time(payload: dict) -> int:
                await asyncio.sleep(0.5)
                return payload["n"]
            """
        }
    )
    first = dev(root)
    ids = [first.client.trigger("one-at-a-time", {"n": n}).id for n in range(5)]
    wait_for_status(first, ids[0], "EXECUTING", "COMPLETED")
    first.close_client()
    first.proc.interrupt()
    assert first.proc.wait(timeout=20) == 0, first.output()
    with sqlite3.connect(root / ".hightide" / "dev.db") as db:
        placeholders = ",".join("?" * len(ids))
        left = dict(db.execute(f"SELECT id, status FROM runs WHERE id IN ({placeholders})", ids).fetchall())
    assert "QUEUED" in left.values(), f"every run finished before Ctrl-C; nothing to test: {left}"

    second = dev(root)

    def all_finished() -> list[Run]:
        runs = [second.client.runs.retrieve(run_id) for run_id in ids]
        assert all(run.is_finished for run in runs), [run.status for run in runs]
        return runs

    runs = assert_eventually(all_finished, timeout=TIMEOUT, interval=0.2)
    for run, before in zip(runs, (left[run_id] for run_id in ids), strict=True):
        if before == "CANCELED":  # the one executing at Ctrl-C
            assert run.status == "CANCELED"
        else:
            assert run.status == "COMPLETED", (run.id, before, run.status)
            assert run.output == ids.index(run.id)
    assert [run.status for run in runs].count("CANCELED") <= 1


def test_retries_disabled_in_dev_stop_a_tasks_own_retries(
    project: Callable[..., Path], dev: Callable[..., Dev]
) -> None:
    root = project(
        {
            "hightide.config.py": """
            from hightide import define_config

            config = define_config(dirs=["trigger"], retries={"enabled_in_dev": False})
            """,
            "trigger/flaky.py": """
            from hightide import task


            @task(id="always-flaky", retry={"max_attempts": 4, "min_timeout": 0.1, "max_timeout": 0.2})
            async def always_flaky(payload: dict) -> None:
                raise RuntimeError("flaky")
            """,
        }
    )
    server = dev(root)
    run = wait_for_status(server, server.client.trigger("always-flaky", {}).id, "FAILED", "COMPLETED")
    assert run.status == "FAILED"
    assert run.attempt_count == 1  # the task's own policy allows 4, but not under `hightide dev`
    assert run.error["message"] == "flaky"
