"""Lifecycle hooks of a run: per task (``@task(on_success=...)``) and global (``tasks.on_success(fn)``,
usually in ``trigger/init.py``, which the worker imports before the tasks).

A hook is a plain or ``async`` function called with keyword arguments, taking any of those its
hook offers, by name (``ctx``, ``payload``, and ``output`` for ``on_success`` ...): the runner
passes only the names it declares. A hook naming another argument is a ``ConfigError`` when the
task is imported. Plain functions run on the run's event loop: keep them short, or make them
``async``.

Inside the run's middleware (so what middleware puts in ``locals`` is there), around the task:
``on_start_attempt`` → the task → ``on_success`` or ``catch_error`` (each failed attempt) →
``on_failure`` (the final attempt only) → ``on_complete`` (once the run is finished).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hightide.core.failures import Failure
from hightide.core.retry import RetryDecision, is_final
from hightide.errors import ConfigError, RunSuspendedSignal
from hightide.sdk.logger import logger
from hightide.sdk.middleware import Middleware, check_middleware

ARGUMENTS: dict[str, frozenset[str]] = {
    "on_start_attempt": frozenset({"payload", "ctx"}),
    "on_success": frozenset({"payload", "ctx", "output"}),
    "on_failure": frozenset({"payload", "ctx", "error"}),
    "on_complete": frozenset({"payload", "ctx", "result"}),
    "on_wait": frozenset({"payload", "ctx", "wait"}),
    "on_resume": frozenset({"payload", "ctx", "wait"}),
    "on_cancel": frozenset({"payload", "ctx"}),
    "catch_error": frozenset({"payload", "ctx", "error", "retry"}),
}
"""Each hook and the keyword arguments it may take."""
HOOKS = tuple(ARGUMENTS)
LOGGED = frozenset({"on_success", "on_failure", "on_complete", "on_wait", "on_resume", "on_cancel"})
"""Hooks whose errors are logged as the run's log lines and change nothing; an error in
``on_start_attempt`` or ``catch_error`` fails the attempt as the task's own error would."""


@dataclass(frozen=True)
class Hook:
    """A user's hook function, with the arguments it takes (worked out once, at import)."""

    name: str
    fn: Callable[..., Any]
    takes: frozenset[str] | None  # None: it takes **kwargs, so everything

    @classmethod
    def of(cls, name: str, fn: Any, where: str) -> Hook:
        if not callable(fn):
            raise ConfigError(f"{where}: {name} must be a function, got {fn!r}")
        offered = ARGUMENTS[name]
        try:
            params = list(inspect.signature(fn).parameters.values())
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: cannot read the signature of {name} hook {fn!r}") from None
        label = getattr(fn, "__qualname__", repr(fn))
        takes: set[str] | None = set()
        for p in params:
            if p.kind is p.VAR_KEYWORD:
                takes = None
                break
            if p.kind in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL):
                raise ConfigError(f"{where}: {name} hook {label} is called with keyword arguments; {p.name!r} is not")
            if p.name not in offered:
                raise ConfigError(
                    f"{where}: {name} hook {label} takes {p.name!r}, but {name} passes only "
                    f"{', '.join(sorted(offered))}"
                )
            assert takes is not None
            takes.add(p.name)
        return cls(name, fn, None if takes is None else frozenset(takes))

    async def __call__(self, **available: Any) -> Any:
        kwargs = available if self.takes is None else {k: available[k] for k in self.takes}
        result = self.fn(**kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result


class HookSet:
    """Hooks and middleware, by hook name: a task's own, or the global ones (``tasks.on_...``)."""

    def __init__(self) -> None:
        self.hooks: dict[str, list[Hook]] = {name: [] for name in HOOKS}
        self.middleware: list[Middleware] = []
        self.version = 0  # bumped on every change: tasks compose their chain again

    def add(self, name: str, fn: Any, where: str) -> None:
        self.hooks[name].append(Hook.of(name, fn, where))
        self.version += 1

    def add_middleware(self, fns: Iterable[Any], where: str) -> None:
        self.middleware.extend(check_middleware(fn, where) for fn in fns)
        self.version += 1

    @classmethod
    def of_task(cls, task_id: str, options: dict[str, Any], middleware: Iterable[Any] | None) -> HookSet:
        hooks = cls()
        where = f"task {task_id!r}"
        for name, value in options.items():
            for fn in value if isinstance(value, list | tuple) else [value]:
                hooks.add(name, fn, where)
        hooks.add_middleware(middleware or (), where)
        return hooks


global_hooks = HookSet()
"""The hooks and middleware of every task (``tasks.on_success(fn)``, ``tasks.middleware(fn)``)."""


@dataclass(frozen=True)
class RetryInfo:
    """What ``catch_error`` is told about retries: the attempt that failed, the run's
    ``max_attempts``, and whether the retry policy would try again (``will_retry``)."""

    attempt: int
    max_attempts: int
    will_retry: bool


@dataclass(frozen=True)
class CompleteResult:
    """What ``on_complete`` receives: ``ok`` and ``output``, or ``error`` (the exception)."""

    ok: bool
    output: Any = None
    error: BaseException | None = None


@dataclass(frozen=True)
class WaitInfo:
    """What ``on_wait`` and ``on_resume`` receive: the kind of wait (``"duration"``, ``"token"``,
    ``"task"``, ``"batch"``), its journal position, and what it waits for."""

    type: str
    position: str
    until: datetime | None = None  # a duration's end
    token_id: str | None = None
    task_id: str | None = None  # the child task, for "task" and "batch"


def wait_info(kind: str, name: str, seq: str, entry: dict[str, Any] | None, body: dict[str, Any]) -> WaitInfo | None:
    """The ``WaitInfo`` of a durable operation, ``None`` for one that does not wait (a step...)."""
    if kind == "wait":
        resume_at = (entry or {}).get("resume_at") or body.get("resume_at")
        until = datetime.fromtimestamp(resume_at, UTC) if resume_at is not None else None
        return WaitInfo("duration", seq, until=until)
    if kind == "wait_for_token":
        return WaitInfo("token", seq, token_id=name)
    if kind == "trigger_and_wait":
        return WaitInfo("task", seq, task_id=name)
    if kind == "batch_trigger_and_wait":
        return WaitInfo("batch", seq, task_id=name)
    return None


@dataclass
class Attempt:
    """The hooks of the attempt executing here (the runner sets it) and what they decided."""

    task_hooks: HookSet
    payload: Any
    ctx: Any
    retry_machine: str | None = None  # where an out-of-memory failure retries (Execution.retry_machine)
    retry: RetryDecision | None = None  # catch_error's decision, sent with the failure
    final_hooks_ran: bool = False

    def hooks(self, name: str) -> list[Hook]:
        return [*global_hooks.hooks[name], *self.task_hooks.hooks[name]]

    async def call(self, name: str, **available: Any) -> list[Any]:
        """Call every ``name`` hook (global ones first). For ``LOGGED`` hooks an error is logged
        and the others still run; otherwise it propagates."""
        results = []
        for hook in self.hooks(name):
            if name not in LOGGED:
                results.append(await hook(payload=self.payload, ctx=self.ctx, **available))
                continue
            try:
                results.append(await hook(payload=self.payload, ctx=self.ctx, **available))
            except (RunSuspendedSignal, asyncio.CancelledError, KeyboardInterrupt):
                raise
            except BaseException as exc:
                failure = Failure.from_exception(exc)
                label = getattr(hook.fn, "__qualname__", repr(hook.fn))
                logger.error(
                    f"{name} hook {label} raised {failure.name}: {failure.message}",
                    hook=name,
                    error=failure.name,
                    stack_trace=failure.stack_trace,
                )
        return results

    async def waited(self, name: str, info: WaitInfo) -> None:
        """``on_wait`` or ``on_resume`` for ``info`` (from the journal, once per real wait)."""
        if self.hooks(name):
            await self.call(name, wait=info)

    async def failed(self, error: BaseException, decide: bool = True) -> None:
        """A failure of this attempt: ``catch_error`` decides (when ``decide``), then, if no
        attempt follows, ``on_failure`` and ``on_complete``."""
        kind = Failure.from_exception(error).kind
        attempt, max_attempts = self.ctx.attempt.number, self.ctx.run.max_attempts
        final = is_final(kind, attempt, max_attempts, self.retry_machine)
        if decide and self.hooks("catch_error"):
            info = RetryInfo(attempt, max_attempts, will_retry=not final)
            for decision in await self.call("catch_error", error=error, retry=info):
                if decision is None:
                    continue
                if not isinstance(decision, RetryDecision):
                    raise ConfigError(
                        f"catch_error returned {decision!r}: return None, RetryDecision.skip(), "
                        "RetryDecision.after(delay) or RetryDecision.at(datetime)"
                    )
                self.retry = decision  # the last hook that decides has the last word
            final = final or (self.retry is not None and not self.retry.retry)
        if final:
            self.final_hooks_ran = True
            await self.call("on_failure", error=error)
            await self.call("on_complete", result=CompleteResult(False, error=error))

    async def succeeded(self, output: Any) -> None:
        self.final_hooks_ran = True
        await self.call("on_success", output=output)
        await self.call("on_complete", result=CompleteResult(True, output=output))


current: contextvars.ContextVar[Attempt | None] = contextvars.ContextVar("hightide_attempt", default=None)


def current_attempt() -> Attempt | None:
    return current.get()


Handler = Callable[[Any, Any], Awaitable[Any]]


def with_hooks(core: Handler) -> Handler:
    """The innermost layer of a task's chain: the lifecycle hooks around the task's function."""

    async def hooked(payload: Any, ctx: Any) -> Any:
        attempt = current.get()
        if attempt is None:  # outside a runner (a test calling execute): the function alone
            return await core(payload, ctx)
        attempt.payload = payload  # validated: hooks see what the task sees
        try:
            if attempt.hooks("on_start_attempt"):
                await attempt.call("on_start_attempt")
            output = await core(payload, ctx)
        except (RunSuspendedSignal, asyncio.CancelledError, KeyboardInterrupt):
            raise
        except BaseException as exc:
            if not _suspending():  # what a suspension cut short is neither a failure nor a success
                await _after_failure(attempt, exc)
            raise
        if not _suspending():
            await attempt.succeeded(output)
        return output

    return hooked


def _suspending() -> bool:
    from hightide.sdk.journal import current_journal  # the journal calls these hooks: imported late

    journal = current_journal()
    return journal is not None and journal.suspending


async def _after_failure(attempt: Attempt, exc: BaseException) -> None:
    try:
        await attempt.failed(exc)
    except (RunSuspendedSignal, asyncio.CancelledError, KeyboardInterrupt):
        raise
    except BaseException as hook_error:
        # catch_error itself raised: the attempt fails with the task's error, the policy decides,
        # and the hook's error is a log line of the run.
        failure = Failure.from_exception(hook_error)
        logger.error(f"catch_error raised {failure.name}: {failure.message}", stack_trace=failure.stack_trace)
        await attempt.failed(exc, decide=False)
