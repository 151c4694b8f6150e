"""A runner never outlives its supervisor (SPEC section 8): when ``hightide worker`` is killed with
SIGKILL, the runner executing an endless task stops within a second or two, whatever the task
does (awaits, blocks the event loop, or spins in a plain ``def``), so the retried attempt on
another worker never runs alongside it."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from hightide import Client
from tests.acceptance.conftest import Background, Server, pid_alive, runner_pids
from tests.support import assert_eventually, written_number

TIMEOUT = 30.0

ENDLESS = """
    import asyncio
    import os
    import time
    from pathlib import Path

    from hightide import task


    def mark(payload: dict) -> None:
        Path(payload["marker"]).write_text(str(os.getpid()))


    @task(id="awaits-forever")
    async def awaits_forever(payload: dict) -> None:
        mark(payload)
        while True:
            await asyncio.sleep(0.05)


    @task(id="blocks-the-loop")
    async def blocks_the_loop(payload: dict) -> None:
        mark(payload)
        while True:
            time.sleep(0.05)  # never yields to the event loop


    @task(id="spins")
    def spins(payload: dict) -> None:
        mark(payload)
        n = 0
        while True:
            n += 1
"""


@pytest.mark.parametrize("task_id", ["awaits-forever", "blocks-the-loop", "spins"])
def test_a_runner_stops_when_its_supervisor_is_killed(
    task_id: str,
    project: Callable[..., Path],
    server: Callable[..., Server],
    worker: Callable[..., Background],
    tmp_path: Path,
) -> None:
    root = project({"trigger/endless.py": ENDLESS})
    hosted = server()
    key = hosted.create_key("dev")
    supervisor = worker(root, hosted.api_url, key, "--concurrency", "1")
    marker = tmp_path / "runner.pid"

    with Client(api_url=hosted.api_url, secret_key=key) as client:
        handle = client.trigger(task_id, {"marker": str(marker)})
        runner = assert_eventually(
            lambda: written_number(marker),
            timeout=TIMEOUT,
            what="the run to start",
        )
        assert client.runs.retrieve(handle.id).status == "EXECUTING"
    assert runner in runner_pids(root), "the task runs in a runner process of this project"

    # SIGKILL to the supervisor alone: runners live in sessions of their own, out of its group.
    os.kill(supervisor.pid, signal.SIGKILL)
    supervisor.wait(timeout=10)
    assert_eventually(lambda: not pid_alive(runner), timeout=2.0, interval=0.02, what=f"runner {runner} to stop")
    assert runner_pids(root) == []
