"""Machine presets under ``hightide dev --machine-memory-scale 0.5``, as a developer meets them: a
run over its preset's memory (halved here: micro 128 MB, small-2x 512 MB) is killed and fails with
``OutOfMemoryError``, children included; the task's ``retry={"out_of_memory": ...}`` moves it to a
bigger machine; runs of different presets never share a runner process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hightide import Run, RunStatus
from tests.acceptance.conftest import Dev, pid_alive
from tests.support import assert_eventually, wait_finished

TIMEOUT = 40.0

TASKS = """
    import asyncio
    import os
    import subprocess
    import sys
    from pathlib import Path

    from hightide import Context, task

    MB = 1024 * 1024
    QUICK = {"min_timeout": 0.1, "max_timeout": 0.1, "randomize": False}


    @task(id="hungry", machine="micro", retry={**QUICK, "max_attempts": 2, "out_of_memory": {"machine": "small-2x"}})
    async def hungry(payload: dict, ctx: Context) -> dict:
        held = b"x" * (payload["mb"] * MB)  # every page written: resident
        await asyncio.sleep(1.5)  # long enough for the supervisor to look (every 0.2 s)
        return {"machine": ctx.machine.name, "memory_gb": ctx.machine.memory_gb, "held_mb": len(held) // MB}


    def noted(payload, ctx, error):
        Path(payload["log"]).write_text(f"{ctx.machine.name} {type(error).__name__} {error}")


    @task(id="hungry-child", machine="micro", retry={**QUICK, "max_attempts": 3}, on_failure=noted)
    async def hungry_child(payload: dict) -> None:
        # The memory is in a process the run started: it counts against the run's machine.
        child = subprocess.Popen([sys.executable, "-c", "import time; x = b'x' * (200 << 20); time.sleep(60)"])
        Path(payload["child"]).write_text(str(child.pid))  # at once, before the child has allocated
        await asyncio.sleep(30)


    @task(id="where")
    async def where(payload: dict, ctx: Context) -> list:
        return [os.getpid(), ctx.machine.name]
"""


def finished(dev: Dev, run_id: str) -> Run:
    run: Run = wait_finished(dev.client, run_id, timeout=TIMEOUT)
    return run


def test_memory_limits_out_of_memory_retries_and_separate_runners(
    project: Callable[..., Path], dev: Callable[..., Dev], tmp_path: Path
) -> None:
    root = project({"trigger/machines.py": TASKS})
    server = dev(root, "--machine-memory-scale", "0.5")
    client = server.client

    # 200 MB: over micro's 128 MB (at this scale), within small-2x's 512 MB.
    hungry = finished(server, client.trigger("hungry", {"mb": 200}).id)
    assert hungry.status == RunStatus.COMPLETED, hungry.error
    assert hungry.output == {"machine": "small-2x", "memory_gb": 1, "held_mb": 200}
    assert hungry.machine == "small-2x"
    first = hungry.attempts[0].error or {}
    assert first["name"] == "OutOfMemoryError"
    assert "over the 128 MB of machine micro" in first["message"]
    assert "--machine-memory-scale 0.5" in first["message"]

    # With no machine to retry on, out of memory is final, whatever attempts are left; the memory
    # was in a child process, which is killed too; on_failure runs (in a fresh runner).
    log, child = tmp_path / "on_failure.txt", tmp_path / "child.pid"
    crashed = finished(server, client.trigger("hungry-child", {"log": str(log), "child": str(child)}).id)
    assert crashed.status == RunStatus.CRASHED and crashed.attempt_count == 1
    assert (crashed.error or {})["name"] == "OutOfMemoryError"
    assert_eventually(lambda: not pid_alive(int(child.read_text())), timeout=10, what="the child to be killed")
    # The file is created empty, then written: wait for what on_failure wrote, not for the file.
    noted_text = assert_eventually(lambda: log.exists() and log.read_text(), timeout=TIMEOUT, what="on_failure to run")
    assert noted_text.startswith("micro AttemptFailedError OutOfMemoryError: the run used")

    # A preset's runs have runners of their own: a micro run never lands in a small-1x runner.
    usual = [finished(server, client.trigger("where", {}).id).output for _ in range(2)]
    small = finished(server, client.trigger("where", {}, machine="micro").id).output
    assert {m for _, m in usual} == {"small-1x"} and small[1] == "micro"
    assert small[0] not in {pid for pid, _ in usual}
