"""Runner processes as the supervisor sees them: spawn, handshake, execute, kill, and a pool that
reuses them for later runs of the same version and machine preset."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hightide.core.machines import DEFAULT_MACHINE
from hightide.core.protocol import (
    AttemptResult,
    Execute,
    Execution,
    FinalHooks,
    HooksDone,
    LogRecord,
    Ready,
    Shutdown,
    Span,
    StartFailed,
)
from hightide.core.protocol.fields import JSONObject
from hightide.worker.protocol import encode, read_message

RecordCallback = Callable[[LogRecord | Span], None]
"""Receives what a run tells while it executes: log records and spans."""
STARTUP_TIMEOUT = 120.0  # seconds for a runner to import the project's tasks


class RunnerStartError(Exception):
    """The runner could not import the project's tasks."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


class RunnerDied(Exception):
    def __init__(self, returncode: int | None) -> None:
        super().__init__(describe_exit(returncode))
        self.returncode = returncode


def describe_exit(code: int | None) -> str:
    if code is None:
        return "the runner process stopped responding"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (killed: out of memory, or by an operator)" if -code == signal.SIGKILL else ""
        return f"the runner process was killed by {name}{hint}"
    return f"the runner process exited with code {code}"


@dataclass
class RunnerProcess:
    version_id: str
    process: asyncio.subprocess.Process
    reader: asyncio.StreamReader
    writer: asyncio.WriteTransport
    machine: str = DEFAULT_MACHINE  # it serves runs of this preset only
    runs: int = 0
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return self.version_id, self.machine

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    @classmethod
    async def spawn(
        cls, version_id: str, root: Path, env: dict[str, str], dev: bool, machine: str = DEFAULT_MACHINE
    ) -> RunnerProcess:
        """Start a runner and wait until it has imported the tasks. Raises ``RunnerStartError``."""
        to_runner_r, to_runner_w = os.pipe()
        from_runner_r, from_runner_w = os.pipe()
        args = [
            "-m",
            "hightide.worker.runner",
            "--root",
            str(root),
            "--in",
            str(to_runner_r),
            "--out",
            str(from_runner_w),
            "--supervisor",  # the runner exits within a second of this process's death (watchdog.py)
            str(os.getpid()),
        ]
        if dev:
            args.append("--dev")
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,  # the real interpreter, not a shim: its pid is the runner's pid
                *args,
                pass_fds=(to_runner_r, from_runner_w),
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in a terminal reaches the supervisor, which decides
            )
        finally:
            os.close(to_runner_r)
            os.close(from_runner_w)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**26)
        read_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(from_runner_r, "rb")
        )
        writer, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(to_runner_w, "wb"))
        runner = cls(version_id, process, reader, writer, machine)
        try:
            hello = await asyncio.wait_for(read_message(reader), STARTUP_TIMEOUT)
            if not isinstance(hello, Ready):
                code = await process.wait()
                if isinstance(hello, StartFailed):
                    raise RunnerStartError(hello.message, hello.traceback)
                raise RunnerStartError(describe_exit(code))
        except TimeoutError:
            await runner.stop()
            raise RunnerStartError(
                f"the task modules took longer than {STARTUP_TIMEOUT:g}s to import (is one blocking at import time?)"
            ) from None
        except BaseException:  # cancelled while starting, or it failed: leave no process behind
            if runner.alive:
                await asyncio.shield(runner.stop())
            writer.close()
            raise
        finally:
            if not runner.alive:
                read_transport.close()
        runner.manifest = hello.manifest
        return runner

    async def execute(self, execution: Execution, on_record: RecordCallback) -> AttemptResult[JSONObject]:
        """Run one attempt; returns the runner's result or raises ``RunnerDied``."""
        self.runs += 1
        self.writer.write(encode(Execute(execution)))
        while True:
            message = await read_message(self.reader)
            if message is None:
                raise RunnerDied(await self.process.wait())
            if isinstance(message, LogRecord | Span):
                on_record(message)
            elif isinstance(message, AttemptResult):
                return message

    async def final_hooks(self, execution: Execution, error: JSONObject, on_record: RecordCallback) -> None:
        """Run the final hooks of ``execution`` (failed with ``error``); raises ``RunnerDied``."""
        self.writer.write(encode(FinalHooks(execution, error)))
        while True:
            message = await read_message(self.reader)
            if message is None:
                raise RunnerDied(await self.process.wait())
            if isinstance(message, LogRecord | Span):
                on_record(message)
            elif isinstance(message, HooksDone):
                return

    async def stop(self, grace: float = 2.0) -> None:
        """Ask politely (SIGTERM), then insist (SIGKILL) after ``grace`` seconds."""
        if not self.alive:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), grace)
        except TimeoutError:
            if self.alive:
                self.process.kill()
            await self.process.wait()
        finally:
            self.writer.close()

    def kill_tree(self) -> None:
        """SIGKILL the runner and every process it started (its session's process group): what is
        over a machine's memory must stop at once, children included."""
        if not self.alive:
            return
        try:
            os.killpg(self.pid, signal.SIGKILL)  # its own session (spawn): the group is its pid
        except (ProcessLookupError, PermissionError):
            self.process.kill()

    async def shutdown(self) -> None:
        """Let an idle runner exit on its own."""
        if self.alive:
            self.writer.write(encode(Shutdown()))
            self.writer.close()
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                await self.stop()


class RunnerPool:
    """Idle runners by version and machine preset. ``acquire`` reuses a warm one or spawns a new one;
    a runner only ever serves runs of its own preset, so a small run never shares a process that a
    large one grew."""

    def __init__(
        self, root: Path, env: dict[str, str], dev: bool, runs_per_process: int, max_idle: int | None = None
    ) -> None:
        self.root, self.env, self.dev = root, env, dev
        self.runs_per_process = runs_per_process
        self.max_idle = max_idle  # idle runners kept in all: more would only hold memory
        self._idle: dict[tuple[str, str], list[RunnerProcess]] = {}
        self._replacing: dict[tuple[str, str], int] = {}  # replacements starting in the background
        self._idle_added = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        self.current_version: str | None = None

    async def spawn(self, version_id: str, machine: str = DEFAULT_MACHINE) -> RunnerProcess:
        return await RunnerProcess.spawn(version_id, self.root, self.env, self.dev, machine)

    async def acquire(self, version_id: str, machine: str = DEFAULT_MACHINE) -> RunnerProcess:
        key = (version_id, machine)
        while True:
            idle = self._idle.get(key, [])
            while idle:
                runner = idle.pop()
                if runner.alive:
                    return runner
            if not self._replacing.get(key):
                return await self.spawn(version_id, machine)
            # A replacement is starting: take it rather than start one more runner.
            self._idle_added.clear()
            await self._idle_added.wait()

    def add_idle(self, runner: RunnerProcess) -> None:
        self._idle_added.set()
        if self.max_idle is not None and self._idle_count() >= self.max_idle and not self._evict_other(runner.key):
            # A replacement that arrived after its slot had started a runner of its own: surplus.
            self._in_background(runner.shutdown())
            return
        self._idle.setdefault(runner.key, []).append(runner)

    def _idle_count(self) -> int:
        return sum(len(runners) for runners in self._idle.values())

    def _evict_other(self, key: tuple[str, str]) -> bool:
        """Make room for an idle runner of ``key`` by stopping an idle runner of the preset with the
        most idle ones, if that is another preset: the presets in use keep their warm runners."""
        fullest = max(self._idle, key=lambda k: len(self._idle[k]), default=None)
        if fullest is None or fullest == key or not self._idle[fullest]:
            return False
        self._in_background(self._idle[fullest].pop(0).shutdown())
        return True

    def release(self, runner: RunnerProcess, over_memory: bool = False) -> None:
        """Keep a healthy runner of the current version for the next run of its preset; retire the
        others (``over_memory``: it still holds more than its preset allows) in the background, and
        start the replacement of one that served its runs, so no slot waits.
        Runners that served their runs are retired one at a time: while a replacement starts, the
        others go on past their limit, so that the slots always have a runner to share (runners
        used in turn reach their limit together, and would otherwise all wait for a new one)."""
        current = runner.version_id == self.current_version
        spent = over_memory or (runner.runs >= self.runs_per_process and not self._replacing.get(runner.key))
        if runner.alive and not spent and current:
            self.add_idle(runner)
            return
        self._in_background(runner.shutdown())
        if current and runner.alive:
            # Counted now, not when the task starts: the next release or acquire must see it.
            self._replacing[runner.key] = self._replacing.get(runner.key, 0) + 1
            self._in_background(self._replace(runner.key))

    async def _replace(self, key: tuple[str, str]) -> None:
        """Start a replacement (counted in ``_replacing`` by ``release``)."""
        try:
            fresh = await self.spawn(*key)
        except RunnerStartError:
            return  # the next acquire will try again and report the error with the run
        finally:
            self._replacing[key] -= 1
            self._idle_added.set()  # wake a waiting acquire either way
        if fresh.version_id == self.current_version:
            self.add_idle(fresh)
        else:
            await fresh.shutdown()

    def _in_background(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def retire_others(self, version_id: str) -> None:
        """Shut down idle runners of versions other than ``version_id`` (after a reload)."""
        for key in [k for k in self._idle if k[0] != version_id]:
            for runner in self._idle.pop(key):
                await runner.shutdown()

    async def close(self) -> None:
        await asyncio.gather(*self._background, return_exceptions=True)
        runners = [r for rs in self._idle.values() for r in rs]
        self._idle.clear()
        await asyncio.gather(*(r.shutdown() for r in runners), return_exceptions=True)
