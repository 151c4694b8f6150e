"""The supervisor: registers the task manifest, claims runs, heartbeats, runs each attempt in a
runner process and reports the outcome.

Side tasks (named, watched by ``run``): ``claim`` (long-poll for work while slots are free),
``heartbeat`` (extend leases; learn which runs were cancelled), ``outbox`` (ship logs, then
results, in batches), ``memory`` (kill a runner over its machine preset's memory: the attempt
fails with ``OutOfMemoryError``). If one dies, the supervisor stops rather than limp on.

Shutdown order (``_shutdown``): stop claiming; give back at once the runs not started yet
(prefetched, or brought by a claim in flight: a long-poll abandoned is released by its claim id);
let the runs executing finish up to the grace period; then stop their runners and give them back
too (``hightide dev``'s Ctrl-C cancels them instead); flush the outbox; stop idle runners. A run
given back ("released") is queued again at once and uses no attempt: it continues elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hightide.core.failures import Failure, FailureKind
from hightide.core.machines import DEFAULT_MACHINE
from hightide.core.protocol import AttemptResult, ClaimMore, Execution, LogRecord, Registered, Span
from hightide.core.protocol.fields import JSONObject
from hightide.errors import TRANSIENT_ERRORS, HightideError
from hightide.types import MAX_CLAIM_BATCH
from hightide.worker.api import WorkerApi
from hightide.worker.events import EventSink, RunEvent
from hightide.worker.hooks import CrashHooks, cancel_hooks
from hightide.worker.memory import WATCH_INTERVAL, MemoryWatch
from hightide.worker.outbox import Outbox, Outcome
from hightide.worker.processes import RunnerDied, RunnerPool, RunnerProcess, RunnerStartError
from hightide.worker.releases import Releaser

log = logging.getLogger(__name__)
FINAL_HOOK_STATUSES = frozenset({"CRASHED", "TIMED_OUT"})
OWED_HOOKS_EVERY = 5.0  # seconds between two asks for the final hooks owed to runs whose worker died


@dataclass(frozen=True)
class WorkerOptions:
    root: Path
    concurrency: int = 4
    prefetch: int = 0  # at most this many runs claimed ahead of free slots (adaptive below it)
    runs_per_process: int = 1000
    claim_wait: float = 10.0
    shutdown_grace: float = 30.0
    kill_grace: float = 2.0
    dev: bool = False
    runner_env: dict[str, str] = field(default_factory=dict)
    machine_memory_scale: float = 1.0  # times each preset's memory (a small host: below 1)


@dataclass
class _Active:
    execution: Execution
    task: asyncio.Task[None]
    started: float
    runner: RunnerProcess | None = None
    stopping: bool = False
    running: bool = False  # it has a slot: its code may have started
    released: bool = False  # stopped to be given back to the queue, not cancelled
    cancelled: bool = False  # stopped because the run was cancelled: its on_cancel hooks run first
    cancelling: asyncio.Task[None] | None = None
    out_of_memory: int | None = None  # the memory (bytes) it was killed at, over its machine's limit


class Supervisor:
    def __init__(self, api: WorkerApi, options: WorkerOptions, on_event: EventSink | None = None) -> None:
        self.api = api
        self.options = options
        self.on_event = on_event or (lambda _e: None)
        env = {**os.environ, **options.runner_env, "PYTHONUNBUFFERED": "1"}
        env["HIGHTIDE_API_URL"] = api.session.api_url
        env["HIGHTIDE_SECRET_KEY"] = api.session.secret_key
        self.pool = RunnerPool(options.root, env, options.dev, options.runs_per_process, options.concurrency)
        self.version: Registered | None = None
        self.lease_seconds = 30.0
        self.active: dict[str, _Active] = {}  # claimed runs: executing, or waiting for a slot
        self._slots = asyncio.Semaphore(options.concurrency)
        self._reserved = 0  # runs asked for by claims in flight
        self._avg_duration: float | None = None  # moving average of attempt durations, seconds
        self._slot_freed = asyncio.Event()
        self._active_changed = asyncio.Event()
        self.outbox = Outbox()
        self._claiming = True
        self.releaser = Releaser(api, self.on_event)
        self._stopped = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()  # runs being stopped as the server said
        self.crash_hooks = CrashHooks(api, self.pool, self._on_record, options.kill_grace)
        self.usual_machine = DEFAULT_MACHINE  # the preset most tasks of the version use: prewarmed
        self.memory = MemoryWatch(options.machine_memory_scale)

    # -- versions ----------------------------------------------------------------------------
    async def load_version(self) -> Registered:
        """Import the current code in a fresh runner, register its manifest as a new version and make
        it the one new runs use. Runs already executing finish on their old runner."""
        async with self._reload_lock:
            runner = await self.pool.spawn("pending")
            try:
                version = await self.api.register(runner.manifest)
            except BaseException:
                await runner.shutdown()
                raise
            runner.version_id = version.version_id
            runner.machine = self.usual_machine = _usual_machine(runner.manifest)  # it has run nothing yet
            self.lease_seconds = float(version.lease_seconds)
            self.version = version
            self.pool.current_version = version.version_id
            self.pool.add_idle(runner)
            await self.pool.retire_others(version.version_id)
            tasks = ", ".join(t["id"] for t in runner.manifest["tasks"])
            self.on_event(RunEvent("version", message=f"version {version.version} registered ({tasks})"))
            return version

    async def reload(self) -> bool:
        """For hot reload: True if the new code was registered, False if it failed to import."""
        try:
            await self.load_version()
            self._active_changed.set()
            return True
        except RunnerStartError as exc:
            self.on_event(
                RunEvent("error", message=f"reload failed, keeping the previous version: {exc}", level="error")
            )
            if exc.details:
                self.on_event(RunEvent("error", message=exc.details.rstrip(), level="error"))
            return False

    async def prewarm(self) -> None:
        """Start a few runners (up to 4, or the concurrency), so the first runs do not pay for a cold start."""
        assert self.version is not None
        vid = self.version.version_id
        for _ in range(min(self.options.concurrency, 4) - 1):
            if not self._claiming or self.pool.current_version != vid:
                return
            with contextlib.suppress(RunnerStartError):
                self.pool.add_idle(await self.pool.spawn(vid, self.usual_machine))

    # -- the service -------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event, cancel_on_stop: bool = False) -> None:
        """Serve until ``stop`` is set, then shut down in order. ``cancel_on_stop`` cancels in-flight
        runs at once (``hightide dev``'s Ctrl-C) instead of letting them finish first."""
        if self.version is None:
            await self.load_version()
        side = {
            asyncio.create_task(self._claim_loop(), name="claim"),
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
            asyncio.create_task(self._outbox_loop(), name="outbox"),
            asyncio.create_task(self._watch_memory(), name="memory"),
            asyncio.create_task(self._owed_hooks_loop(), name="owed hooks"),
            asyncio.create_task(self.prewarm(), name="prewarm"),
        }
        stop_task = asyncio.create_task(stop.wait(), name="stop")
        crashed: list[asyncio.Task[Any]] = []
        try:
            watched = {t for t in side if t.get_name() != "prewarm"} | {stop_task}
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            crashed = [t for t in done if t is not stop_task]  # side tasks never end on their own
        finally:
            # A crashed side task means this worker cannot be trusted to report: stop the runners
            # and leave the runs to their leases (they are retried), rather than cancel them.
            mode = "abandon" if crashed else ("cancel" if cancel_on_stop else "drain")
            await self._shutdown(side, stop_task, mode)
        for task in crashed:
            exc = task.exception()
            raise exc if exc else RuntimeError(f"worker side task {task.get_name()!r} stopped")

    async def _shutdown(self, side: set[asyncio.Task[Any]], stop_task: asyncio.Task[Any], mode: str) -> None:
        self._claiming = False
        claim = next(t for t in side if t.get_name() == "claim")
        claim.cancel()  # a long-poll in flight is abandoned: its claim id stays open, released below
        await asyncio.gather(claim, return_exceptions=True)
        if mode != "abandon":
            # What has not started goes back at once, whatever the grace: it must not wait here.
            waiting = [a for a in self.active.values() if not a.running]
            await self._stop_runs(waiting)
            self.releaser.give_back([a.execution for a in waiting], self.releaser.take_open_claims(), started=False)
        if self.active and mode == "drain":
            self.on_event(
                RunEvent(
                    "version", message=f"waiting up to {self.options.shutdown_grace:g}s for {len(self.active)} run(s)"
                )
            )
            await asyncio.wait([a.task for a in self.active.values()], timeout=self.options.shutdown_grace)
        if self.active and mode == "cancel":
            await self._cancel_in_flight()
        elif self.active:
            left = list(self.active.values())
            await self._stop_runs(left, release=mode == "drain")
            if mode == "drain":
                self.releaser.give_back([a.execution for a in left])
        # Final hooks of crashed runs: their log lines go out with the flush below.
        await self.crash_hooks.stop(self.options.shutdown_grace)
        if self._background:
            await asyncio.wait(self._background, timeout=5)
        self._stopped.set()
        self.outbox.ready.set()
        outbox = next(t for t in side if t.get_name() == "outbox")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(outbox), 10)
        if mode != "abandon":
            self.releaser.give_back([], self.releaser.take_open_claims())  # claims of reports given up on
        await self.releaser.wait(15)
        for task in (*side, stop_task):
            task.cancel()
        await asyncio.gather(*side, stop_task, return_exceptions=True)
        await self.pool.close()

    async def _stop_runs(self, runs: list[_Active], release: bool = True) -> None:
        """Stop ``runs`` (kill their runners; a run still waiting for a slot never starts), marked
        as given back to the queue when ``release``."""
        for active in runs:
            active.stopping = True
            active.released = release
            active.task.cancel()
        await asyncio.gather(*(self._kill(a) for a in runs), return_exceptions=True)
        await asyncio.gather(*(a.task for a in runs), return_exceptions=True)

    async def _cancel_in_flight(self) -> None:
        """``hightide dev``'s Ctrl-C: stop the runs executing and cancel them."""
        runs = list(self.active.items())
        for _, active in runs:
            active.cancelled = active.running
        await self._stop_runs([a for _, a in runs], release=False)
        for run_id, _active in runs:
            try:
                await self.api.cancel(run_id)
            except HightideError as exc:
                log.warning("could not cancel %s on shutdown: %s", run_id, exc)

    # -- claiming ----------------------------------------------------------------------------
    @property
    def _prefetch(self) -> int:
        """Claim ahead only as much as short runs need to keep the slots busy across a round trip
        (about 50 ms of work); runs that take seconds are not claimed ahead at all, so they stay
        in the queue for whichever worker frees a slot first."""
        if self._avg_duration is None:
            return 0  # nothing known yet: long runs must not wait here while other workers idle
        wanted = int(self.options.concurrency * 0.05 / max(self._avg_duration, 1e-4))
        return min(self.options.prefetch, wanted)

    @property
    def _capacity(self) -> int:
        """How many runs a claim may ask for now (never more than the server takes at once)."""
        free = self.options.concurrency + self._prefetch - len(self.active) - self._reserved
        return min(free, MAX_CLAIM_BATCH)

    def _unreserve(self, reserved: int) -> None:
        """A claim came back: what it did not fill may be claimed again, so wake the claim loop
        (it may have gone to sleep because of this very reservation)."""
        self._reserved -= reserved
        self._slot_freed.set()

    async def _claim_loop(self) -> None:
        """Long-poll for work whenever a slot would otherwise idle. Under load, claims ride on the
        result reports instead (see ``_send``), so this loop mostly waits."""
        backoff = 0.5
        claim_id: str | None = None  # kept while a claim is tried again: the server answers it once
        while self._claiming:
            if len(self.active) + self._reserved >= self.options.concurrency or self._capacity <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            assert self.version is not None
            want = self._capacity
            claim_id = claim_id or self.releaser.open_claim()
            self._reserved += want
            try:
                executions = await self.api.claim(self.version.version_id, want, self.options.claim_wait, claim_id)
                self.releaser.answered(claim_id)
                claim_id = None
                backoff = 0.5
            except TRANSIENT_ERRORS as exc:
                self.on_event(RunEvent("error", message=f"{exc.message}; retrying in {backoff:g}s", level="warn"))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)
                continue
            finally:
                self._unreserve(want)
            for execution in executions:
                self._start(execution)

    def _start(self, execution: Execution) -> None:
        if not self._claiming:  # a claim in flight when the stop began: its runs go back at once
            self.releaser.give_back([execution], started=False)
            return
        run_id = execution.run_id
        active = _Active(execution, None, time.monotonic())  # type: ignore[arg-type]
        active.task = asyncio.create_task(self._execute(execution, active), name=f"run {run_id}")
        self.active[run_id] = active
        self._active_changed.set()

    async def _execute(self, execution: Execution, active: _Active) -> None:
        run_id = execution.run_id
        result: AttemptResult[JSONObject] | None
        slot = False
        crashed = False  # the attempt ended outside the task: its final hooks did not run
        try:
            await self._slots.acquire()
            slot = True
            active.running = True
            active.started = time.monotonic()
            self.on_event(RunEvent("run", execution.task_id, run_id, execution.attempt, "EXECUTING", None, "started"))
            assert self.version is not None
            runner = await self.pool.acquire(self.version.version_id, execution.machine)
            active.runner = runner
            async with asyncio.timeout(execution.max_duration):
                # Suspended (``waiting_on``) or not, the runner's result is what the server is told.
                result = await runner.execute(execution, self._on_record)
            self.pool.release(runner, over_memory=self.memory.was_over(runner.pid, runner.machine))
        except RunnerDied as died:
            if active.out_of_memory is not None:
                message = self.memory.message(execution, active.out_of_memory)
                result = _failed(execution, "OutOfMemoryError", message, FailureKind.OUT_OF_MEMORY)
            else:
                result = None if active.stopping else _failed(execution, "RunnerCrashed", str(died), FailureKind.CRASH)
            crashed = True
        except TimeoutError:
            await self._kill(active)
            result = _failed(
                execution,
                "MaxDurationExceeded",
                f"the attempt ran longer than max_duration={execution.max_duration}s",
                FailureKind.TIMEOUT,
            )
            crashed = True
        except RunnerStartError as exc:
            result = _failed(execution, "RunnerStartError", str(exc), FailureKind.CRASH)
        except asyncio.CancelledError:
            await self._kill(active)
            result = None
        except Exception as exc:  # a bug or the OS (no file descriptors...): report it, never lose it
            log.exception("attempt %s of %s failed in the worker", execution.attempt, run_id)
            await self._kill(active)
            result = _failed(execution, type(exc).__name__, f"worker error: {exc}", FailureKind.CRASH)
        finally:
            if slot:
                self._slots.release()
            if self.active.get(run_id) is active:  # a newer attempt of the same run may be here
                self.active.pop(run_id)
            self._slot_freed.set()
            self._active_changed.set()
        duration = time.monotonic() - active.started
        avg = self._avg_duration
        self._avg_duration = duration if avg is None else 0.8 * avg + 0.2 * duration
        if result is None:
            if not active.released:  # a released run is told of when the server took it back
                self.on_event(RunEvent("run", execution.task_id, run_id, execution.attempt, "CANCELED", duration))
            return
        self.outbox.add(Outcome(result, execution.task_id, duration, execution if crashed else None))

    async def _kill(self, active: _Active) -> None:
        active.stopping = True
        if active.runner is not None:
            if active.cancelled:  # once, however many paths stop it: the others wait for it
                if active.cancelling is None:
                    active.cancelling = asyncio.create_task(cancel_hooks(active.runner))
                await asyncio.shield(active.cancelling)
            await active.runner.stop(self.options.kill_grace)

    def _on_record(self, record: LogRecord | Span) -> None:
        self.outbox.add_record(record)
        if isinstance(record, Span):
            return
        active = self.active.get(record.run_id)
        task_id = active.execution.task_id if active else ""
        self.on_event(
            RunEvent(
                "log",
                task_id,
                record.run_id,
                record.attempt,
                message=record.message,
                level=record.level,
                time=record.time,
                attributes=record.attributes,
            )
        )

    # -- machines ----------------------------------------------------------------------------
    async def _watch_memory(self) -> None:
        """Every ``WATCH_INTERVAL``, read the memory of each runner executing a run (with the
        processes it started) and kill those over their machine's limit: the attempt then fails
        with ``OutOfMemoryError`` (see ``_execute``)."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            watched = {
                a.runner.pid: a
                for a in self.active.values()
                if a.runner is not None and a.running and not a.stopping and a.runner.alive
            }
            over = self.memory.over((pid, a.execution.machine) for pid, a in watched.items())
            for pid, used in over.items():
                active = watched[pid]
                if active.out_of_memory is None and active.runner is not None:
                    active.out_of_memory = used
                    active.runner.kill_tree()

    # -- heartbeats and cancellation ----------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        last_extend = time.monotonic()
        while True:
            if not self.active:
                self._active_changed.clear()
                await self._active_changed.wait()
                continue
            self._active_changed.clear()
            held = [(run_id, a.execution.attempt) for run_id, a in self.active.items() if not a.stopping]
            if not held:  # only runs being stopped: nothing to extend until something changes
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._active_changed.wait(), 1.0)
                continue
            sent = time.monotonic()
            extend = sent - last_extend >= self.lease_seconds / 3
            try:
                # The server holds the call up to `wait` seconds: keep it well inside the lease, and
                # date an extension from when it was sent, so that a lease never lapses between calls.
                stop = await self.api.heartbeat(held, wait=min(1.0, self.lease_seconds / 3), extend=extend)
            except TRANSIENT_ERRORS as exc:
                log.warning("heartbeat failed (%s); retrying", exc)
                await asyncio.sleep(1.0)
                continue
            if extend:
                last_extend = sent
            attempts = dict(held)
            for run_id in stop:
                active = self.active.get(run_id)
                # The stop is about the attempt that was sent: a newer attempt of the run goes on.
                if active is not None and not active.stopping and active.execution.attempt == attempts.get(run_id):
                    active.stopping = True
                    self._in_background(self._stop_run(active))

    async def _stop_run(self, active: _Active) -> None:
        """Stop a run the server says to stop: cancelled (its ``on_cancel`` hooks run first), or
        lost to an expired lease (it goes on elsewhere: nothing runs here)."""
        try:
            async with asyncio.timeout(5):
                run = await self.api.session.request("GET", f"/api/v1/runs/{active.execution.run_id}")
            active.cancelled = active.running and run.get("status") == "CANCELED"
        except (HightideError, TimeoutError) as exc:
            log.warning(
                "could not tell why %s must stop (%s): stopping it without on_cancel", active.execution.run_id, exc
            )
        active.task.cancel()

    # -- reporting ---------------------------------------------------------------------------
    async def _outbox_loop(self) -> None:
        while True:
            await self.outbox.ready.wait()
            self.outbox.ready.clear()
            while self.outbox.pending:
                await self._send(*self.outbox.take())
            if self._stopped.is_set():
                return

    async def _send(self, logs: list[LogRecord], spans: list[Span], outcomes: list[Outcome]) -> None:
        """One round trip: logs and spans, then results, and a claim for the slots the results free."""
        delay = 0.5
        claim: ClaimMore | None = None
        if self._claiming and self.version is not None and self._capacity > 0:
            claim = ClaimMore(self.version.version_id, self._capacity, self.releaser.open_claim())
        results = [o.result for o in outcomes]
        while True:
            # A try after a failed one carries the same claim id: if the server applied the failed
            # try, this one gets the runs it took. Once stopping, the claim is left to be released.
            if claim is not None and not self._claiming:
                claim = None
            want = claim.max_runs if claim else 0
            self._reserved += want
            try:
                reply = await self.api.complete(results, logs, spans, claim)
                if claim is not None:
                    self.releaser.answered(claim.claim_id or "")
            except TRANSIENT_ERRORS as exc:
                if self._stopped.is_set() and delay > 4:
                    log.warning("giving up reporting %d result(s): %s", len(results), exc)
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
                continue
            except HightideError as exc:
                if not logs and not spans:
                    raise
                # The server refused what the runs told (a record too large, say): the results
                # must still get through, so send them without it.
                log.warning(
                    "dropping %d log record(s) and %d span(s) the server refused: %s", len(logs), len(spans), exc
                )
                logs, spans = [], []
                continue
            finally:
                self._unreserve(want)
            for execution in reply.runs:
                self._start(execution)
            for outcome, answer in zip(outcomes, reply.results, strict=True):
                self.on_event(outcome.event(answer))
                final = answer.accepted and answer.status in FINAL_HOOK_STATUSES
                if final and outcome.crashed is not None and self.version is not None:
                    self.crash_hooks.start(outcome.crashed, outcome.result.error or {}, self.version.version_id)
            return

    def _in_background(self, coro: Any) -> None:
        task = asyncio.create_task(coro, name="stop run")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _owed_hooks_loop(self) -> None:
        """Every ``OWED_HOOKS_EVERY``, take the final hooks the server holds for runs that crashed
        or timed out without them (their worker died) and run them, as for a run of this worker."""
        while True:
            await asyncio.sleep(OWED_HOOKS_EVERY)
            if self._claiming and self.version is not None and not self._stopped.is_set():
                await self.crash_hooks.take_owed(self.version.version_id)


def _usual_machine(manifest: dict[str, Any]) -> str:
    """The machine preset most of a manifest's tasks run on (the default for a tie or none)."""
    counts: dict[str, int] = {}
    for task in manifest.get("tasks", ()):
        machine = task.get("machine") or DEFAULT_MACHINE
        counts[machine] = counts.get(machine, 0) + 1
    return max(counts, key=lambda m: (counts[m], m == DEFAULT_MACHINE), default=DEFAULT_MACHINE)


def _failed(execution: Execution, name: str, message: str, kind: str) -> AttemptResult[JSONObject]:
    """The result of an attempt that failed in the worker (its runner died, or could not start...)."""
    error = Failure(name=name, message=message, kind=kind).to_dict()
    return AttemptResult(execution.run_id, execution.attempt, False, error=error, execution=execution.execution)
