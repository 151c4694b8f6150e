"""The journal of the run executing in this runner: durable operations replay from it or are recorded
in it, and a run whose operations must wait is suspended (see docs/durable-execution.md).

Each durable call takes the next position (``seq``) of the asyncio task it runs in, when it starts,
before any ``await``. Tasks are numbered in the order they are created by their parent task: the
task's own code has positions "0", "1", ...; the second task it starts (``asyncio.gather`` of
coroutines starts one each, in argument order) has "t1/0", "t1/1", ... So positions do not depend on
which branch of a ``gather`` happens to finish first, and a replay finds every operation at the
position where it was recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import time
import weakref
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, ParamSpec, TypeVar

from hightide.errors import (
    DurableCallError,
    HightideConnectionError,
    NonDeterminismError,
    RunSuspendedSignal,
    ServerError,
)
from hightide.sdk import hooks as run_hooks
from hightide.sdk.defaults import default_client
from hightide.sdk.tracing import SEQ, operation_span, waiting

RECORD_RETRY_SECONDS = 60.0  # how long a recording rides out a server restart before failing the attempt
SUSPEND_GRACE = 10.0  # how long the task gets to unwind (its finally blocks) once suspended


class Suspended(BaseException):
    """Raised by ``RunJournal.run`` when the run stopped to wait on the journal positions ``waiting_on``."""

    def __init__(self, waiting_on: list[str], records: list[dict[str, Any]]) -> None:
        super().__init__(f"suspended, waiting on {waiting_on}")
        self.waiting_on = waiting_on
        self.records = records  # operations to record with the suspension (see `defer`)


class RunJournal:
    def __init__(
        self, run_id: str, attempt: int, entries: list[dict[str, Any]], threshold: float, execution: int | None = None
    ) -> None:
        self.run_id = run_id
        self.attempt = attempt
        self.execution = execution
        self.threshold = threshold
        self.entries = {e["seq"]: e for e in entries}
        self._unreached = set(self.entries)  # recorded positions the replay has not reached yet
        self._frontier = _last_per_path(self.entries)  # where an earlier execution stopped, per task
        self._paths: weakref.WeakKeyDictionary[asyncio.Future[Any], str] = weakref.WeakKeyDictionary()
        self._ops: dict[str, int] = {}  # per task path: operations taken
        self._tasks: dict[str, int] = {}  # per task path: tasks started
        self._busy = 0  # recordings and steps in progress: a suspension waits for them
        self._idle = asyncio.Event()
        self._idle.set()
        self._blocked: dict[str, asyncio.Future[None]] = {}
        self._wants_suspend = asyncio.Event()
        self._suspending = False  # decided: no durable operation may start any more
        self._deferred: dict[str, dict[str, Any]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None  # the run's loop, once it runs
        self.misuse: DurableCallError | None = None  # a durable call made where it cannot work
        self._calls: list[tuple[str, Any]] = []  # durable calls made, until they are awaited
        self._prune_at = 64

    @property
    def suspending(self) -> bool:
        """Whether the run is unwinding to suspend (what ends now is cut short, not finished)."""
        return self._suspending

    @property
    def replaying(self) -> bool:
        """Whether recorded operations are still ahead (the logs up to them were emitted before)."""
        return bool(self._unreached)

    def replaying_here(self) -> bool:
        """Whether the calling asyncio task (or the tasks it started) has recorded operations still
        ahead: what it does now was done, and logged and traced, by an earlier execution. Another
        branch of a ``gather`` may be past its recorded operations while this one replays."""
        if not self._unreached:
            return False
        try:
            task = asyncio.current_task()
        except RuntimeError:  # a thread (a sync step or task): judge by the whole run
            return True
        path = self._paths.get(task, "") if task is not None else ""
        return any(seq.startswith(path) for seq in self._unreached)

    def task_factory(
        self, loop: asyncio.AbstractEventLoop, coro: Any, context: contextvars.Context | None = None
    ) -> asyncio.Task[Any]:
        """The event loop's task factory while the run executes: numbers the tasks it starts."""
        task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop, context=context)
        parent = asyncio.current_task(loop)
        path = self._paths.get(parent) if parent is not None else None
        if path is not None and not _internal.get():
            number = self._tasks.get(path, 0)
            self._tasks[path] = number + 1
            self._paths[task] = f"{path}t{number}/"
        return task

    def take(self, kind: str, name: str) -> tuple[str, dict[str, Any] | None]:
        """The next position of the current task and its recorded entry, if any (checked to be the
        same operation)."""
        if self._suspending:  # e.g. in a `finally:` while the task unwinds: it runs again on replay
            raise RunSuspendedSignal()
        task = asyncio.current_task()
        path = self._paths.get(task, "") if task is not None else ""
        number = self._ops.get(path, 0)
        self._ops[path] = number + 1
        seq = f"{path}{number}"
        self._unreached.discard(seq)
        entry = self.entries.get(seq)
        if entry is not None and (entry["kind"] != kind or entry["name"] != name):
            raise NonDeterminismError(
                f"run {self.run_id} replayed differently: durable operation #{seq} is {kind} {name!r} now, but "
                f"the run's journal recorded {entry['kind']} {entry['name']!r} there. Durable operations must "
                "happen in the same order on every execution (see docs/durable-execution.md)",
                details={"seq": seq, "recorded": [entry["kind"], entry["name"]], "called": [kind, name]},
            )
        return seq, entry

    def resumes(self, seq: str, entry: dict[str, Any]) -> bool:
        """Whether this execution resumes the run from the wait recorded at ``seq`` (now done): the
        same attempt suspended on it, so nothing was recorded after it on its task's positions, and
        it did not sleep in place. Replays of waits resumed from before are not resumes."""
        if seq not in self._frontier or entry.get("attempt") != self.attempt:
            return False
        if entry["kind"] == "wait":
            resume_at, recorded_at = entry.get("resume_at"), entry.get("recorded_at")
            if resume_at is not None and recorded_at is not None and resume_at - recorded_at < self.threshold:
                return False  # a short timer: it slept in place, and was resumed there
        return True

    def busy(self) -> _Busy:
        """``async with journal.busy():`` around work a suspension must not cut (a step's function)."""
        return _Busy(self)

    async def record(self, seq: str, kind: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Record the operation at ``seq`` (the server does what it does in the same transaction)."""
        payload = {"attempt": self.attempt, "execution": self.execution, "seq": seq, "kind": kind, "name": name, **body}
        async with self.busy():
            with internal_calls():
                entry = await self._post(payload)
        self.entries[seq] = entry
        return entry

    def defer(self, seq: str, kind: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """A timer that will suspend the run is recorded with the suspension itself: one request
        fewer per wait. Returns the entry as it will be recorded (not done)."""
        self._deferred[seq] = {"seq": seq, "kind": kind, "name": name, **body}
        return {"seq": seq, "kind": kind, "name": name, "done": False, "result": None, **body}

    async def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + RECORD_RETRY_SECONDS
        delay = 0.2
        while True:
            try:
                entry: dict[str, Any] = await default_client().session.request(
                    "POST", f"/api/v1/runs/{self.run_id}/journal", json=payload
                )
                return entry
            except (HightideConnectionError, ServerError):
                # Recording a position twice is harmless (the first entry stands): retry.
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def settle(self, seq: str, entry: dict[str, Any]) -> dict[str, Any]:
        """Return ``entry`` once it is done: a short timer sleeps here; anything else suspends the run."""
        if entry["done"]:
            return entry
        resume_at = entry.get("resume_at")
        if entry["kind"] == "wait" and resume_at is not None and resume_at - time.time() < self.threshold:
            await asyncio.sleep(max(0.0, resume_at - time.time()))
            return {**entry, "done": True}
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._blocked[seq] = future
        self._wants_suspend.set()
        await future  # never resolves: RunSuspendedSignal is set on it when the run suspends
        raise AssertionError("unreachable")

    async def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run the task's coroutine; raise ``Suspended`` if it must wait. Before suspending, let the
        other branches of an ``asyncio.gather`` reach (and record) their own waits."""
        self.loop = asyncio.get_running_loop()
        main = asyncio.ensure_future(coro)
        self._paths[main] = ""
        while True:
            wants = asyncio.ensure_future(self._wants_suspend.wait())
            await asyncio.wait({main, wants}, return_when=asyncio.FIRST_COMPLETED)
            wants.cancel()
            if main.done():
                return self._finished(main)
            while True:  # settle: no recording or step in progress, and nothing new after a few turns
                await self._idle.wait()
                for _ in range(5):
                    await asyncio.sleep(0)
                if self._idle.is_set():
                    break
            if main.done():
                return self._finished(main)
            waiting_on = sorted(self._blocked)
            self._suspending = True
            for future in self._blocked.values():
                if not future.done():
                    future.set_exception(RunSuspendedSignal())
            await _unwind(main)
            self._forget_calls()
            raise Suspended(waiting_on, [self._deferred[s] for s in waiting_on if s in self._deferred])

    def called(self, what: str, call: Any) -> None:
        """Note a durable call (a coroutine or promise) until it is awaited: one never awaited fails
        the run rather than let it finish as if it had waited."""
        self._calls.append((what, call))
        if len(self._calls) > self._prune_at:  # forget the awaited ones now and then
            self._calls = [c for c in self._calls if _unstarted(c[1])]
            self._prune_at = max(64, 2 * len(self._calls))

    def _forget_calls(self) -> list[str]:
        """The durable calls never awaited (closed: no "never awaited" warning on top of the run's
        error, or when the run suspends before awaiting them)."""
        forgotten = [what for what, call in self._calls if _unstarted(call)]
        for _, call in self._calls:
            if inspect.iscoroutine(call) and _unstarted(call):
                call.close()
        self._calls = []
        return forgotten

    def _finished(self, main: asyncio.Future[Any]) -> Any:
        """The result of the run's function, unless a durable call in it was never awaited."""
        forgotten = self._forget_calls()
        result = main.result()
        if forgotten:
            raise DurableCallError(
                f"durable call {forgotten[0]} was never awaited, so the run did not wait for it: write "
                f"`await {forgotten[0]}` (durable calls need an `async def` task that awaits them)",
                details={"calls": forgotten},
            )
        return result


def _last_per_path(entries: dict[str, dict[str, Any]]) -> set[str]:
    """The last recorded position of each asyncio task's path ("0", "1" ... "t1/0" ...)."""
    last: dict[str, tuple[int, str]] = {}
    for seq in entries:
        path, _, number = seq.rpartition("/")
        try:
            n = int(number)
        except ValueError:
            continue
        if path not in last or n > last[path][0]:
            last[path] = (n, seq)
    return {seq for _, seq in last.values()}


def _unstarted(call: Any) -> bool:
    if inspect.iscoroutine(call):
        return inspect.getcoroutinestate(call) == inspect.CORO_CREATED
    return not getattr(call, "started", True)


class _Busy:
    def __init__(self, journal: RunJournal) -> None:
        self.journal = journal

    async def __aenter__(self) -> None:
        self.journal._busy += 1
        self.journal._idle.clear()

    async def __aexit__(self, *exc: object) -> None:
        self.journal._busy -= 1
        if self.journal._busy == 0:
            self.journal._idle.set()


async def _unwind(main: asyncio.Future[Any]) -> None:
    """Let the suspended task run its ``finally`` blocks; cancel it (and tasks it started) if it
    does not end by itself."""
    try:
        await asyncio.wait_for(asyncio.shield(main), SUSPEND_GRACE)
    except BaseException:  # RunSuspendedSignal, the task's own error, or the grace running out
        pass
    if not main.done():
        main.cancel()
    current = asyncio.current_task()
    # The runner's loop runs one run at a time: the other tasks are this run's (but the runner's
    # own services). Cancel them and let their `finally` blocks finish before the next run.
    leftovers = [t for t in asyncio.all_tasks() if t is not current and not t.done() and t not in _services]
    for task in leftovers:
        task.cancel()
    if leftovers:
        await asyncio.wait(leftovers, timeout=SUSPEND_GRACE)


current: contextvars.ContextVar[RunJournal | None] = contextvars.ContextVar("hightide_journal", default=None)
_internal: contextvars.ContextVar[bool] = contextvars.ContextVar("hightide_internal", default=False)
_services: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()


@contextlib.contextmanager
def internal_calls() -> Iterator[None]:
    """Around the SDK's own API calls inside a run: the tasks started inside (by the HTTP client, or
    a flush of metadata) are not the run's, so they take no journal position."""
    token = _internal.set(True)
    try:
        yield
    finally:
        _internal.reset(token)


def service(task: asyncio.Task[Any]) -> asyncio.Task[Any]:
    """Mark ``task`` as the runner's, not the run's: a suspension does not cancel it (the metadata
    flusher must finish a request it started, or an increment could be lost or sent twice)."""
    _services.add(task)
    return task


def current_journal() -> RunJournal | None:
    """The journal of the run executing here, or ``None`` outside a task."""
    return current.get()


def check_durable_call(what: str) -> RunJournal | None:
    """Called when a durable operation is called (not awaited): inside a run it must be called on the
    run's event loop, i.e. from an ``async def`` task. From a plain ``def`` task (run in a thread) it
    could neither wait nor suspend the run: raise, and remember it, so the run fails even if the
    function catches the error. Returns the run's journal (``None`` outside a run)."""
    journal = current.get()
    if journal is None or journal.loop is None:
        return journal
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not journal.loop:
        journal.misuse = DurableCallError(
            f"durable calls need an `async def` task: {what} was called from a plain `def` task (or another "
            "thread or event loop), where the run can neither wait nor be suspended; declare the task "
            f"`async def` and `await {what}`",
            details={"call": what},
        )
        raise journal.misuse
    return journal


P = ParamSpec("P")
T = TypeVar("T")


def durable(what: str) -> Callable[[Callable[P, Coroutine[Any, Any, T]]], Callable[P, Coroutine[Any, Any, T]]]:
    """Mark an ``async def`` SDK function as a durable call: checked when it is called (a plain
    ``def`` task calling it fails at once, rather than finishing with a "never awaited" warning), and
    watched until it is awaited. ``what`` names it in errors; ``{0.id}`` is the id of ``self``."""

    def decorate(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(fn)
        def call(*args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, T]:
            name = what.format(*args) if "{" in what else what
            journal = check_durable_call(name)
            coro = fn(*args, **kwargs)
            if journal is not None:
                journal.called(name, coro)
            return coro

        return call

    return decorate


async def perform(kind: str, name: str, body: dict[str, Any], what: str, label: str | None = None) -> dict[str, Any]:
    """One durable operation of the current run: replayed from the journal or recorded, then settled.
    A recorded one has no span of its own: the execution that first ran it recorded that."""
    journal = current.get()
    if journal is None:
        raise RuntimeError(
            f"{what} works inside a task only, and not inside a step (the run's journal makes it durable)"
        )
    seq, entry = journal.take(kind, name)
    attempt = run_hooks.current_attempt()
    info = run_hooks.wait_info(kind, name, seq, entry, body) if attempt is not None else None
    if entry is not None and entry["done"]:
        if info is not None and attempt is not None and journal.resumes(seq, entry):
            await attempt.waited("on_resume", info)  # once: the first execution after the wait
        return entry
    # Recorded but not done: this execution waits on it anew (a retried attempt waiting for a child
    # triggered again, a runner that died before suspending): a span of its own.
    # on_wait once per wait: not again when an earlier execution of this attempt announced it.
    announce = info is not None and (entry is None or entry.get("attempt") != journal.attempt)
    with operation_span(kind, name, label) as span:
        span.set_attribute(SEQ, seq)
        if entry is None and kind == "wait" and body["resume_at"] - time.time() >= journal.threshold:
            entry = journal.defer(seq, kind, name, body)
        elif entry is None:
            entry = await journal.record(seq, kind, name, body)  # the span is the children's parent
        if entry["done"] or attempt is None or info is None or not announce:
            with waiting(span):
                return await journal.settle(seq, entry)
        await attempt.waited("on_wait", info)
        with waiting(span):
            settled = await journal.settle(seq, entry)  # returns only when it slept in place
        await attempt.waited("on_resume", info)
        return settled
