"""The hooks a worker runs outside an attempt's own course.

- ``cancel_hooks``: a cancelled run's ``on_cancel``, in the runner it was executing in;
- ``CrashHooks``: ``on_failure`` and ``on_complete`` of a run whose final attempt crashed or timed
  out (the runner is gone, so in a fresh one), whether this worker ran it or the server says they
  are owed because the run's whole worker died (``/api/v1/worker/hooks``). At least once: a worker
  that stops before telling the server they ran leaves them to another, after their lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from hightide.core.protocol import Execution, LogRecord, Span
from hightide.core.protocol.fields import JSONObject
from hightide.errors import TRANSIENT_ERRORS
from hightide.worker.api import WorkerApi
from hightide.worker.processes import RunnerDied, RunnerPool, RunnerProcess, RunnerStartError

log = logging.getLogger(__name__)
CANCEL_HOOK_SECONDS = 5.0  # how long a cancelled run's on_cancel hooks may take (runner.py has the same)
FINAL_HOOKS_SECONDS = 30.0  # how long a crashed run's on_failure and on_complete may take


async def cancel_hooks(runner: RunnerProcess) -> None:
    """Tell the runner its run was cancelled (SIGUSR1): it runs the run's ``on_cancel`` hooks and
    exits. Waits for that a little longer than the runner gives them; the caller then stops it."""
    if not runner.alive:
        return
    with contextlib.suppress(ProcessLookupError):
        runner.process.send_signal(signal.SIGUSR1)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(runner.process.wait(), CANCEL_HOOK_SECONDS + 1)


class CrashHooks:
    def __init__(
        self,
        api: WorkerApi,
        pool: RunnerPool,
        on_record: Callable[[LogRecord | Span], None],
        kill_grace: float,
    ) -> None:
        self.api = api
        self.pool = pool
        self.on_record = on_record
        self.kill_grace = kill_grace
        self.tasks: set[asyncio.Task[None]] = set()
        self._running: set[str] = set()  # the runs whose final hooks are running here
        self._stopped = False

    def start(self, execution: Execution, error: JSONObject, version_id: str) -> None:
        """Run the final hooks of ``execution`` in the background, on a runner of ``version_id`` (the
        worker's current version), once at a time per run."""
        if self._stopped or execution.run_id in self._running:
            return
        self._running.add(execution.run_id)
        task = asyncio.create_task(self._run(execution, error, version_id), name="final hooks")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def take_owed(self, version_id: str) -> None:
        """Take the final hooks the server holds for runs whose worker died, and start them."""
        try:
            owed = await self.api.owed_hooks(version_id, max_runs=2)
        except TRANSIENT_ERRORS as exc:
            log.warning("could not ask for owed final hooks (%s); asking again later", exc)
            return
        for hooks in owed:
            self.start(hooks.execution, hooks.error, version_id)

    async def stop(self, grace: float) -> None:
        """Start no more; wait up to ``grace`` (at most ``FINAL_HOOKS_SECONDS``) for those running."""
        self._stopped = True
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=min(FINAL_HOOKS_SECONDS, grace))

    async def _run(self, execution: Execution, error: JSONObject, version_id: str) -> None:
        """In a fresh runner of the version on the run's machine, for at most ``FINAL_HOOKS_SECONDS``;
        then tell the server they ran."""
        runner: RunnerProcess | None = None
        try:
            runner = await self.pool.acquire(version_id, execution.machine)
            async with asyncio.timeout(FINAL_HOOKS_SECONDS):
                await runner.final_hooks(execution, error, self.on_record)
            self.pool.release(runner)
            runner = None
        except (RunnerDied, RunnerStartError, TimeoutError) as exc:
            log.warning("the final hooks of %s did not finish: %s", execution.run_id, exc)
        except Exception:
            log.exception("the final hooks of %s failed in the worker", execution.run_id)
        finally:
            self._running.discard(execution.run_id)
            if runner is not None:
                await runner.stop(self.kill_grace)
        # They ran (or tried to, and would fail the same way again): no longer owed.
        try:
            await self.api.hooks_done([execution.run_id])
        except TRANSIENT_ERRORS as exc:
            log.warning(
                "could not report the final hooks of %s (%s): another worker may run them", execution.run_id, exc
            )
