"""``@task``: declare a task; ``Task.trigger`` / ``batch_trigger`` run it in the background."""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar, get_type_hints, overload

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from hightide.core.durations import parse_duration
from hightide.core.machines import DEFAULT_MACHINE, MACHINES
from hightide.core.ratelimits import RateLimit, parse_rate_limit
from hightide.core.retry import RetryPolicy
from hightide.errors import ConfigError, OutputSerializationError, PayloadValidationError, ValidationError
from hightide.sdk import hooks as run_hooks
from hightide.sdk import subtasks
from hightide.sdk.client import Duration
from hightide.sdk.context import Context, current_context
from hightide.sdk.defaults import default_client
from hightide.sdk.journal import check_durable_call, current_journal, durable
from hightide.sdk.middleware import Handler, Middleware, compose
from hightide.sdk.models import BatchHandle, BatchResult, RunHandle, TaskRunResult

P = TypeVar("P")
R = TypeVar("R")

_TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$")

registry: dict[str, Task[Any, Any]] = {}
"""Every task defined in this process, by id (filled as modules are imported)."""


@dataclass(frozen=True)
class Queue:
    """A named queue, shared by the tasks that use it: ``queue(name="emails", concurrency_limit=5)``;
    ``rate_limit={"limit": 60, "period": "1m"}`` (optionally ``"per": "concurrency_key"``) starts at
    most 60 of its runs in any minute."""

    name: str
    concurrency_limit: int | None = None
    rate_limit: RateLimit | None = None

    def to_dict(self) -> dict[str, Any]:
        declared: dict[str, Any] = {"name": self.name, "concurrency_limit": self.concurrency_limit}
        if self.rate_limit is not None:
            declared["rate_limit"] = self.rate_limit.to_dict()
        return declared


def queue(
    name: str, concurrency_limit: int | None = None, rate_limit: RateLimit | dict[str, Any] | None = None
) -> Queue:
    if concurrency_limit is not None and (not isinstance(concurrency_limit, int) or concurrency_limit < 0):
        raise ConfigError(f"queue {name!r}: concurrency_limit must be a whole number >= 0")
    try:
        rate = parse_rate_limit(rate_limit, f"queue {name!r}: rate_limit")
    except ValidationError as exc:
        raise ConfigError(exc.message) from None
    return Queue(name, concurrency_limit, rate)


class Task(Generic[P, R]):
    """A task: call ``trigger`` to run it in the background. Create with ``@task(id=...)``."""

    def __init__(
        self,
        fn: Callable[..., Awaitable[R] | R],
        *,
        id: str,
        description: str | None = None,
        retry: dict[str, Any] | None = None,
        queue: Queue | dict[str, Any] | None = None,
        machine: str | None = None,
        max_duration: float | None = None,
        ttl: Duration | None = None,
        schedule: dict[str, Any] | None = None,
        payload_type: Any = None,
        middleware: Sequence[Middleware] | None = None,
        **hooks: Any,
    ) -> None:
        """``schedule`` (from ``schedules.task``): the cron schedule the task declares, as its
        manifest entry carries it; ``payload_type``: the payload's type when the function's first
        parameter has no annotation."""
        if not isinstance(id, str) or not _TASK_ID.match(id):
            raise ConfigError(
                f"task id {id!r} is invalid: use 1-128 letters, digits and - _ . : / (starting with a letter or digit)"
            )
        if machine is not None and machine not in MACHINES:
            raise ConfigError(f"task {id!r}: machine must be one of {', '.join(MACHINES)}")
        self.id = id
        self.fn = fn
        self.description = description or inspect.getdoc(fn)
        self.retry = RetryPolicy.from_dict(retry)  # validates early: errors show at import
        self._retry_options = dict(retry or {})
        self.queue = _queue_of(id, queue)
        self.machine = machine or DEFAULT_MACHINE
        self.max_duration = max_duration
        self.ttl = None if ttl is None else parse_duration(ttl, field=f"task {id!r} ttl")
        unknown = set(hooks) - set(run_hooks.HOOKS)
        if unknown:
            raise ConfigError(
                f"task {id!r}: unknown option(s) {sorted(unknown)}; hooks are {', '.join(run_hooks.HOOKS)}"
            )
        self.hooks = run_hooks.HookSet.of_task(id, {k: v for k, v in hooks.items() if v is not None}, middleware)
        self._chain: tuple[int, Handler] | None = None
        self._signature = inspect.signature(fn)
        self._wants_ctx, self._payload_adapter = self._inspect(fn)
        if self._payload_adapter is None and payload_type is not None:
            self._payload_adapter = TypeAdapter(payload_type)
        self.schedule = schedule
        functools.update_wrapper(self, fn)
        if id in registry and registry[id].fn.__qualname__ != fn.__qualname__:
            raise ConfigError(f"task id {id!r} is defined twice ({registry[id].fn.__qualname__} and {fn.__qualname__})")
        registry[id] = self

    def _inspect(self, fn: Callable[..., Any]) -> tuple[bool, TypeAdapter[Any] | None]:
        params = list(self._signature.parameters.values())
        try:
            hints = get_type_hints(fn)
        except Exception:
            hints = {}
        wants_ctx = any(p.name == "ctx" or hints.get(p.name) is Context for p in params[1:])
        if len(params) > 2 or (len(params) == 2 and not wants_ctx):
            raise ConfigError(f"task {self.id!r}: the function takes (payload) or (payload, ctx: Context)")
        adapter = None
        if params and params[0].name in hints and hints[params[0].name] is not Any:
            adapter = TypeAdapter(hints[params[0].name])
        return wants_ctx, adapter

    # -- the manifest entry the worker registers ----------------------------------------------
    def manifest(
        self,
        default_retry: dict[str, Any] | None = None,
        default_max_duration: float | None = None,
        retries_enabled: bool = True,
    ) -> dict[str, Any]:
        """The task as the worker registers it. ``retries_enabled=False`` (``hightide dev`` with
        ``retries={"enabled_in_dev": False}``) gives every task one attempt, whatever its own policy."""
        retry = RetryPolicy.from_dict({**(default_retry or {}), **self._retry_options}).to_dict()
        if not retries_enabled:
            retry["max_attempts"] = 1
        schema = None
        if self._payload_adapter is not None:
            try:
                schema = self._payload_adapter.json_schema()
            except Exception:  # a type Pydantic validates but cannot describe: validated in the runner only
                schema = None
        return {
            "id": self.id,
            "description": self.description,
            "retry": retry,
            "queue": self.queue.to_dict(),
            "machine": self.machine,
            "max_duration": self.max_duration if self.max_duration is not None else default_max_duration,
            "ttl": self.ttl,
            "payload_schema": schema,
            # The server checks the schema only when it says all the model checks of a value's shape.
            "payload_schema_checked": schema is not None and not _reshapes_input(self._payload_adapter),
            "function": f"{self.fn.__module__}.{self.fn.__qualname__}",
            **({"schedule": self.schedule} if self.schedule else {}),
        }

    # -- running (inside a runner process) ---------------------------------------------------
    def validate_payload(self, payload: Any, field: str = "payload") -> Any:
        """``payload`` (as JSON, as the runner receives it) validated by the task's payload model, or
        ``PayloadValidationError`` with Pydantic's reasons, field by field."""
        if self._payload_adapter is None:
            return payload
        try:
            return self._payload_adapter.validate_python(payload)
        except PydanticValidationError as exc:
            raise payload_error(exc, self.id, field) from None

    async def execute(self, payload: Any, ctx: Context) -> Any:
        """Validate ``payload``, then run the task's chain: global middleware, the task's middleware,
        its hooks, and the function (a plain ``def`` runs in a thread). Returns the output as JSON."""
        try:
            payload = self.validate_payload(payload)
        except PayloadValidationError as exc:
            attempt = run_hooks.current_attempt()
            if attempt is not None:  # a final failure before the chain: on_failure, on_complete
                await attempt.failed(exc, decide=False)
            raise
        output = await self.chain()(payload, ctx)
        # The function's output is JSON already; middleware may have replaced it.
        if self.hooks.middleware or run_hooks.global_hooks.middleware:
            output = to_json(output, f"task {self.id!r}")
        return output

    def chain(self) -> Handler:
        """The run as one function, composed once (again only after a global hook is added)."""
        version = run_hooks.global_hooks.version + self.hooks.version
        if self._chain is None or self._chain[0] != version:
            middleware = [*run_hooks.global_hooks.middleware, *self.hooks.middleware]
            self._chain = (version, compose(middleware, run_hooks.with_hooks(self._call)))
        return self._chain[1]

    async def _call(self, payload: Any, ctx: Context) -> Any:
        args: list[Any] = [payload] if self._signature.parameters else []
        kwargs = {"ctx": ctx} if self._wants_ctx else {}
        if inspect.iscoroutinefunction(self.fn):
            result = await self.fn(*args, **kwargs)
        else:
            result = await asyncio.to_thread(self.fn, *args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
        journal = current_journal()
        if journal is not None and journal.misuse is not None:
            raise journal.misuse  # even if the function caught it: what it called never ran
        return to_json(result, f"task {self.id!r}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Calling the task directly runs its function in-process (handy in unit tests)."""
        return self.fn(*args, **kwargs)

    # -- triggering ---------------------------------------------------------------------------
    @durable("{0.id}.trigger()")
    async def trigger(
        self,
        payload: P,
        *,
        idempotency_key: str | None = None,
        idempotency_key_ttl: Duration | None = None,
        delay: Duration | datetime | None = None,
        ttl: Duration | None = None,
        tags: Iterable[str] | str | None = None,
        metadata: dict[str, Any] | None = None,
        queue: str | None = None,
        concurrency_key: str | None = None,
        max_attempts: int | None = None,
        priority: float | None = None,
        machine: str | None = None,
        version: str | None = None,
        debounce: dict[str, Any] | None = None,
    ) -> RunHandle[R]:
        """Queue a run and return its handle at once. ``debounce={"key": "user-42", "delay": "5s"}``:
        triggers with the same key while its run is still delayed push that run later and return it
        (``"mode": "trailing"`` takes the last payload; ``"max_delay"`` caps the wait).

        >>> handle = await hello.trigger({"name": "Ada"}, tags=["user:42"], delay="5m")
        >>> handle.id
        'run_...'
        """
        options = {k: v for k, v in locals().items() if k not in ("self", "payload")}
        payload_json = self._checked_payload(payload)
        if subtasks.in_run():
            batch = await subtasks.trigger(self.id, [{"payload": payload_json, "options": options}])
            return batch.runs[0]
        return await default_client().trigger(self.id, payload_json, **options)

    @durable("{0.id}.batch_trigger()")
    async def batch_trigger(self, items: Sequence[dict[str, Any] | Any]) -> BatchHandle:
        """Trigger up to 1,000 runs atomically: ``[{"payload": p, "options": {...}}, ...]``."""
        body = self._items(items, "batch_trigger")
        if subtasks.in_run():
            return await subtasks.trigger(self.id, body, "batch_trigger")
        return await default_client().batch_trigger(body, task_id=self.id)

    def trigger_and_wait(self, payload: P, **options: Any) -> subtasks.TaskRunPromise[R]:
        """Inside a task: trigger a child run and wait for its result, without holding a process
        while it runs (the parent is suspended; see docs/durable-execution.md).

        >>> result = await child.trigger_and_wait({"n": 1})
        >>> result.ok, result.output, result.error
        >>> output = await child.trigger_and_wait({"n": 1}).unwrap()  # raises SubtaskUnwrapError
        """
        what = f"{self.id}.trigger_and_wait()"
        journal = check_durable_call(what)
        item = {"payload": self._checked_payload(payload), "options": options}

        async def start() -> TaskRunResult[R]:
            batch = await subtasks.trigger_and_wait(self.id, [item], "trigger_and_wait")
            return batch.runs[0]

        promise = subtasks.TaskRunPromise(start)
        if journal is not None:
            journal.called(what, promise)
        return promise

    @durable("{0.id}.batch_trigger_and_wait()")
    async def batch_trigger_and_wait(self, items: Sequence[dict[str, Any]]) -> BatchResult[R]:
        """Inside a task: trigger up to 1,000 children and wait for all; ``.runs`` are their results,
        in input order."""
        return await subtasks.trigger_and_wait(
            self.id, self._items(items, "batch_trigger_and_wait"), "batch_trigger_and_wait"
        )

    def _items(self, items: Sequence[dict[str, Any] | Any], what: str) -> list[dict[str, Any]]:
        ctx = current_context()
        body = []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or "payload" not in item:
                raise ValidationError(f"{what} of {self.id!r}: each item is {{'payload': ..., 'options': {{...}}}}")
            options = dict(item.get("options") or {})
            if ctx:
                options.setdefault("parent_run_id", ctx.run.id)
            body.append({"payload": self._checked_payload(item["payload"], f"items[{i}].payload"), "options": options})
        return body

    def _checked_payload(self, payload: Any, field: str = "payload") -> Any:
        """The payload as it is sent: converted to JSON as given, and checked with the task's model as
        the runner will check it (see docs/decisions.md, "Payload validation")."""
        payload_json = _payload_json(payload, self.id)
        self.validate_payload(payload_json, field)
        return payload_json

    def __repr__(self) -> str:
        return f"<Task {self.id}>"


def _queue_of(task_id: str, value: Queue | dict[str, Any] | None) -> Queue:
    if value is None:
        return Queue(f"task/{task_id}")
    if isinstance(value, Queue):
        return value
    if isinstance(value, dict):
        unknown = set(value) - {"name", "concurrency_limit", "rate_limit"}
        if unknown:
            raise ConfigError(f"task {task_id!r}: unknown queue option(s) {sorted(unknown)}")
        return queue(value.get("name") or f"task/{task_id}", value.get("concurrency_limit"), value.get("rate_limit"))
    raise ConfigError(f"task {task_id!r}: queue must be queue(...) or a dict like {{'concurrency_limit': 5}}")


_ANY = TypeAdapter(Any)
_RESHAPING = frozenset({"function-before", "function-wrap", "function-plain"})
# Settings under which a model accepts input its JSON schema refuses: field names where the schema
# requires aliases, text that fits a length or pattern once stripped or lower-cased, numbers as text.
_RESHAPING_SETTINGS = (
    "validate_by_name",
    "str_strip_whitespace",
    "str_to_lower",
    "str_to_upper",
    "coerce_numbers_to_str",
    "strip_whitespace",
    "to_lower",
    "to_upper",
)


def _reshapes_input(adapter: TypeAdapter[Any] | None) -> bool:
    """Whether the type accepts input its JSON schema does not describe: validators that see the raw
    input (``mode="before"``, ``"wrap"``, ``"plain"``, model validators too), or settings that
    transform it before the checks the schema shows."""
    stack: list[Any] = [adapter.core_schema] if adapter is not None else []
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, dict):
            if node.get("type") in _RESHAPING or any(node.get(name) is True for name in _RESHAPING_SETTINGS):
                return True
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
    return False


def to_json(value: Any, what: str) -> Any:
    """Convert the return value of ``what`` (``"task 'x'"``, ``"step 'y'"``) to JSON (Pydantic models,
    dataclasses and datetimes included); ``OutputSerializationError`` if it cannot be."""
    try:
        return _ANY.dump_python(value, mode="json")
    except Exception as exc:
        raise OutputSerializationError(
            f"the output of {what} is not JSON-serialisable: {exc}; return JSON values, Pydantic models, "
            "dataclasses or datetimes",
            details={"type": type(value).__name__},
        ) from None


def _payload_json(payload: Any, task_id: str) -> Any:
    # By alias: a model given as the payload is validated again from this JSON (here and in the runner).
    try:
        return _ANY.dump_python(payload, mode="json", by_alias=True)
    except Exception as exc:
        raise ValidationError(f"the payload for task {task_id!r} is not JSON-serialisable: {exc}") from exc


def payload_error(exc: PydanticValidationError, task_id: str, field: str = "payload") -> PayloadValidationError:
    """Pydantic's reasons as one line per field, named like the server's errors
    (``payload.quantity: Input should be greater than 0``)."""
    reasons = []
    for error in exc.errors(include_url=False):
        where = ".".join([field, *(str(p) for p in error.get("loc", ()))])
        reasons.append({"field": where, "reason": error.get("msg", "invalid"), "type": error.get("type", "")})
    text = "; ".join(f"{r['field']}: {r['reason']}" for r in reasons) or f"{field}: invalid"
    first = reasons[0]["field"] if reasons else field
    return PayloadValidationError(
        f"{text} (task {task_id!r})", details={"field": first, "task": task_id, "errors": reasons}
    )


@overload
def task(fn: Callable[[P], Awaitable[R]], /) -> Task[P, R]: ...
@overload
def task(fn: Callable[[P], R], /) -> Task[P, R]: ...
@overload
def task(
    fn: None = None,
    /,
    *,
    id: str | None = None,
    description: str | None = None,
    retry: dict[str, Any] | None = None,
    queue: Queue | dict[str, Any] | None = None,
    machine: str | None = None,
    max_duration: float | None = None,
    ttl: Duration | None = None,
    middleware: Sequence[Middleware] | None = None,
    on_start_attempt: Callable[..., Any] | None = None,
    on_success: Callable[..., Any] | None = None,
    on_failure: Callable[..., Any] | None = None,
    on_complete: Callable[..., Any] | None = None,
    on_wait: Callable[..., Any] | None = None,
    on_resume: Callable[..., Any] | None = None,
    on_cancel: Callable[..., Any] | None = None,
    catch_error: Callable[..., Any] | None = None,
) -> Callable[[Callable[..., Any]], Task[Any, Any]]: ...


def task(fn: Callable[..., Any] | None = None, /, *, id: str | None = None, **options: Any) -> Any:
    """Declare a task.

    >>> @task(id="hello-world", retry={"max_attempts": 5})
    ... async def hello(payload: dict) -> str:
    ...     return f"Hello {payload['name']}"
    """

    def wrap(f: Callable[..., Any]) -> Task[Any, Any]:
        return Task(f, id=id or f.__name__.replace("_", "-"), **options)

    return wrap(fn) if fn is not None else wrap


_F = TypeVar("_F", bound=Callable[..., Any])


class _Tasks:
    """``tasks.trigger("child-task", payload, **options)``: trigger by id, without importing the task.

    Also the hooks and middleware of every task, usually set in ``trigger/init.py`` (imported
    before the tasks): ``tasks.on_failure(fn)``, ``tasks.middleware(fn)``; each returns ``fn``, so
    it works as a decorator too (``@tasks.on_success``)."""

    def _global(self, name: str, fn: _F) -> _F:
        run_hooks.global_hooks.add(name, fn, "global hook")
        return fn

    def on_start_attempt(self, fn: _F) -> _F:
        return self._global("on_start_attempt", fn)

    def on_success(self, fn: _F) -> _F:
        return self._global("on_success", fn)

    def on_failure(self, fn: _F) -> _F:
        return self._global("on_failure", fn)

    def on_complete(self, fn: _F) -> _F:
        return self._global("on_complete", fn)

    def on_wait(self, fn: _F) -> _F:
        return self._global("on_wait", fn)

    def on_resume(self, fn: _F) -> _F:
        return self._global("on_resume", fn)

    def on_cancel(self, fn: _F) -> _F:
        return self._global("on_cancel", fn)

    def catch_error(self, fn: _F) -> _F:
        return self._global("catch_error", fn)

    def middleware(self, fn: _F) -> _F:
        """Middleware of every task, outside each task's own: ``async def mw(payload, ctx, next)``."""
        run_hooks.global_hooks.add_middleware([fn], "global middleware")
        return fn

    @durable("tasks.trigger()")
    async def trigger(self, task_id: str, payload: Any = None, **options: Any) -> RunHandle[Any]:
        if subtasks.in_run():
            batch = await subtasks.trigger(task_id, [{"payload": payload, "options": options}])
            return batch.runs[0]
        return await default_client().trigger(task_id, payload, **options)

    @durable("tasks.batch_trigger()")
    async def batch_trigger(self, items: Sequence[dict[str, Any]]) -> BatchHandle:
        """Items name their task: ``[{"task": "a", "payload": ..., "options": {...}}, ...]``."""
        if subtasks.in_run():
            return await subtasks.trigger("", items, "batch_trigger")
        return await default_client().batch_trigger(items)


tasks = _Tasks()
