"""``step``: run an in-process function once per run and record its result, so that retries and
resumes return the recorded value instead of running it again."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from hightide.sdk.journal import current, current_journal, durable
from hightide.sdk.task import to_json
from hightide.sdk.tracing import SEQ, span

T = TypeVar("T")


@durable("step()")
async def step(name: str, fn: Callable[..., Awaitable[T] | T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` (sync or async) once per run; its JSON result is recorded in the
    run's journal, and its execution is a span in the run's trace. A step that raises is not
    recorded: it runs again when the run is retried.

    >>> charge = await step("charge", stripe_charge, order_id, amount=42)
    >>> now = await step("now", time.time)  # a non-deterministic read, fixed for the whole run
    """
    journal = current_journal()
    if journal is None:  # outside a task there is no journal: just call it
        return await _call(fn, args, kwargs)
    seq, entry = journal.take("step", name)
    if entry is not None:
        return entry["result"]
    # A suspension waits for the step, so that it is never cut short.
    async with journal.busy():
        with span(f"step {name}", "step", {SEQ: seq}):
            # Inside the step there is no journal: the step as a whole is what is recorded, so a
            # trigger in it is a plain one, and a wait in it is an error, not a run that never suspends.
            outside = current.set(None)
            try:
                value = to_json(await _call(fn, args, kwargs), f"step {name!r}")
            finally:
                current.reset(outside)
            entry = await journal.record(seq, "step", name, {"result": value})
    return entry["result"]


async def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if inspect.iscoroutinefunction(fn):
        return await fn(*args, **kwargs)
    result = await asyncio.to_thread(fn, *args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result
