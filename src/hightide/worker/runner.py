"""The runner: a child process that imports the project's tasks and executes attempts, one at a
time, as its supervisor asks. It is reused for many runs of one version (warm starts).

    python -m hightide.worker.runner --root PATH --in FD --out FD --supervisor PID
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import io
import logging
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from hightide.config import checkpoint_threshold, load_project_config
from hightide.core.failures import Failure, FailureKind
from hightide.core.protocol import (
    AttemptResult,
    Execute,
    Execution,
    FinalHooks,
    HooksDone,
    LogRecord,
    Ready,
    Shutdown,
    StartFailed,
)
from hightide.core.protocol.fields import JSONObject
from hightide.errors import AttemptFailedError, PayloadValidationError
from hightide.sdk import context as run_context
from hightide.sdk import hooks as run_hooks
from hightide.sdk import journal as run_journal
from hightide.sdk import locals as run_locals
from hightide.sdk.context import Context
from hightide.sdk.journal import RunJournal, Suspended
from hightide.sdk.logger import set_sink
from hightide.sdk.metadata import MetadataBuffer
from hightide.sdk.metadata import current as run_metadata
from hightide.sdk.task import registry
from hightide.worker.loader import load_tasks
from hightide.worker.protocol import BlockingChannel
from hightide.worker.spans import RunSpans, tracer_provider
from hightide.worker.watchdog import Watchdog

CANCEL_HOOK_SECONDS = 5.0  # how long on_cancel hooks may take (the supervisor waits a little longer)


class Runner:
    def __init__(self, channel: BlockingChannel, threshold: float, spans: RunSpans) -> None:
        self.channel = channel
        self.threshold = threshold
        self.spans = spans
        self.execution: Execution | None = None
        self.journal: RunJournal | None = None
        self.attempt: run_hooks.Attempt | None = None
        self.run_context: contextvars.Context | None = None  # the executing run's, for on_cancel

    def log(self, level: str, message: str, attributes: dict[str, Any]) -> None:
        ex = self.execution
        if ex is None or (self.journal is not None and self.journal.replaying_here()):
            return  # logs of the replayed part were emitted by an earlier execution
        self.channel.send(
            LogRecord(
                run_id=ex.run_id,
                attempt=ex.attempt,
                time=time.time(),
                level=level,
                message=message,
                attributes=attributes,
                span_id=self.spans.current_span_id(),
            )
        )

    async def execute(self, execution: Execution) -> AttemptResult[JSONObject]:
        def result(ok: bool, **outcome: Any) -> AttemptResult[JSONObject]:
            return AttemptResult(execution.run_id, execution.attempt, ok, execution=execution.execution, **outcome)

        task = registry.get(execution.task_id)
        if task is None:
            failure = Failure(
                "TaskNotFound", f"task {execution.task_id!r} is not defined in this version", kind=FailureKind.SYSTEM
            )
            return result(False, error=failure.to_dict())
        ctx = Context.from_execution(execution)
        journal = RunJournal(
            execution.run_id, execution.attempt, list(execution.journal), self.threshold, execution.execution
        )
        metadata = MetadataBuffer(
            execution.run_id,
            dict(execution.metadata),
            execution.parent_run_id,
            execution.root_run_id,
            replaying=journal.replaying_here,
        )
        token = run_context.current.set(ctx)
        attempt = run_hooks.Attempt(task.hooks, execution.payload, ctx, execution.retry_machine)
        attempt_token = run_hooks.current.set(attempt)
        locals_token = run_locals.start_run()
        journal_token = run_journal.current.set(journal)
        metadata_token = run_metadata.set(metadata)
        self.execution, self.journal = execution, journal
        self.attempt, self.run_context = attempt, contextvars.copy_context()
        loop = asyncio.get_running_loop()
        loop.set_task_factory(journal.task_factory)
        metadata.start()  # after the context is set: its warnings are the run's log lines
        try:
            with self.spans.executing(execution, journal):
                output = await journal.run(task.execute(execution.payload, ctx))
            return result(True, output=output)
        except Suspended as suspended:
            return result(False, waiting_on=tuple(suspended.waiting_on), record=tuple(suspended.records))
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # SystemExit and friends from user code are failures too
            return result(False, error=Failure.from_exception(exc).to_dict(), retry=attempt.retry)
        finally:
            # Before the result goes to the supervisor, whatever the outcome (completed, failed,
            # suspended): a finished run is never seen without its final metadata, and a resumed
            # run starts from the metadata its earlier execution left.
            await metadata.close()
            await _flush_stdio()
            loop.set_task_factory(None)
            self.execution, self.journal = None, None
            self.attempt, self.run_context = None, None
            run_metadata.reset(metadata_token)
            run_journal.current.reset(journal_token)
            run_locals.end_run(locals_token)
            run_hooks.current.reset(attempt_token)
            run_context.current.reset(token)

    async def final_hooks(self, execution: Execution, error: JSONObject) -> HooksDone:
        """``on_failure`` and ``on_complete`` of a run whose final attempt ended outside its task
        (its runner died, or it ran past ``max_duration``): in this fresh runner, with an
        ``AttemptFailedError``. Their errors, and what they log, are the run's log lines."""
        task = registry.get(execution.task_id)
        if task is None:
            return HooksDone()
        failure = Failure.from_dict(error)
        ctx = Context.from_execution(execution)
        attempt = run_hooks.Attempt(task.hooks, execution.payload, ctx)
        if not attempt.hooks("on_failure") and not attempt.hooks("on_complete"):
            return HooksDone()
        token, attempt_token = run_context.current.set(ctx), run_hooks.current.set(attempt)
        locals_token = run_locals.start_run()
        self.execution = execution
        try:
            exc = AttemptFailedError(failure.name, failure.message, failure.kind)
            with contextlib.suppress(PayloadValidationError):
                attempt.payload = task.validate_payload(execution.payload)
            await attempt.call("on_failure", error=exc)
            await attempt.call("on_complete", result=run_hooks.CompleteResult(False, error=exc))
        finally:
            await _flush_stdio()
            self.execution = None
            run_locals.end_run(locals_token)
            run_hooks.current.reset(attempt_token)
            run_context.current.reset(token)
        return HooksDone()

    def cancelled(self) -> None:
        """SIGUSR1 from the supervisor: the run executing here was cancelled. Run its ``on_cancel``
        hooks (for at most ``CANCEL_HOOK_SECONDS``), then end the process: the supervisor waits for
        that, and kills it if it takes longer."""
        attempt, context = self.attempt, self.run_context
        if attempt is None or context is None:
            return  # idle: the run it was about finished meanwhile
        if not attempt.hooks("on_cancel"):
            os._exit(0)

        async def hooks() -> None:
            try:
                async with asyncio.timeout(CANCEL_HOOK_SECONDS):
                    await attempt.call("on_cancel")
            finally:
                await _flush_stdio()
                os._exit(0)

        run_journal.service(asyncio.get_running_loop().create_task(hooks(), context=context))

    def serve(self) -> None:
        import httpx  # noqa: F401  (while idle, before the first run: durable calls use the API)

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.add_signal_handler(signal.SIGUSR1, self.cancelled)
        while True:
            message = self.channel.receive()
            if message is None or isinstance(message, Shutdown):
                break
            if isinstance(message, Execute):
                self.channel.send(loop.run_until_complete(self.execute(message.execution)))
            elif isinstance(message, FinalHooks):
                self.channel.send(loop.run_until_complete(self.final_hooks(message.execution, message.error)))
        loop.close()


class _StreamToLog(io.TextIOBase):
    """``print`` inside a run becomes a run log line; outside a run it goes where it always went."""

    def __init__(self, runner: Runner, level: str, fallback: Any) -> None:
        self.runner, self.level, self.fallback = runner, level, fallback
        self._buffer = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.runner.execution is None:
            return int(self.fallback.write(text))
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            self.runner.log(self.level, line, {"stream": "stdout" if self.level == "info" else "stderr"})
        return len(text)

    def flush(self) -> None:
        if self._buffer and self.runner.execution is not None:
            line, self._buffer = self._buffer, ""
            self.runner.log(self.level, line, {"stream": "stdout" if self.level == "info" else "stderr"})
        self.fallback.flush()


async def _flush_stdio() -> None:
    sys.stdout.flush()
    sys.stderr.flush()


class _LogHandler(logging.Handler):
    """Standard ``logging`` records inside a run become run logs."""

    LEVELS = {"DEBUG": "debug", "INFO": "info", "WARNING": "warn", "ERROR": "error", "CRITICAL": "error"}

    def __init__(self, runner: Runner) -> None:
        super().__init__(logging.DEBUG)
        self.runner = runner

    def emit(self, record: logging.LogRecord) -> None:
        if self.runner.execution is None or record.name.startswith("hightide.task"):
            return
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        self.runner.log(self.LEVELS.get(record.levelname, "info"), message, {"logger": record.name})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hightide-runner")
    parser.add_argument("--root", required=True)
    parser.add_argument("--in", dest="inp", type=int, required=True)
    parser.add_argument("--out", type=int, required=True)
    parser.add_argument("--dev", action="store_true")
    parser.add_argument("--supervisor", type=int, default=None, help="the pid this runner must not outlive")
    args = parser.parse_args(argv)
    # First of all, before the tasks are imported (an import can hang): never outlive the supervisor.
    Watchdog(args.supervisor or os.getppid(), args.inp, args.out).start()
    channel = BlockingChannel(os.fdopen(args.inp, "rb"), os.fdopen(args.out, "wb"))
    root = Path(args.root)
    os.chdir(root)
    try:
        config = load_project_config(root)
        threshold = checkpoint_threshold(config)
        # Before the tasks are imported: tracers they create at import time record into runs.
        _, spans = tracer_provider(channel.send, config.project or root.name)
        manifest = load_tasks(config, dev=args.dev)
    except BaseException as exc:
        channel.send(StartFailed(f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        return 3
    runner = Runner(channel, threshold, spans)
    set_sink(runner.log)
    sys.stdout = _StreamToLog(runner, "info", sys.stdout)
    sys.stderr = _StreamToLog(runner, "error", sys.stderr)
    root_logger = logging.getLogger()
    root_logger.addHandler(_LogHandler(runner))
    if root_logger.level > logging.INFO or root_logger.level == logging.NOTSET:
        root_logger.setLevel(logging.INFO)
    for noisy in ("httpx", "httpcore"):  # the SDK's own API calls (journal, triggers) are not run logs
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("opentelemetry").setLevel(logging.ERROR)  # e.g. each attribute cut to its limit
    channel.send(Ready(os.getpid(), manifest))
    runner.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
