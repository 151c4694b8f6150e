"""Triggering from inside a run: every trigger is a durable operation (a replay returns the runs it
created instead of creating them again), and ``trigger_and_wait`` waits for the child's result."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any, Generic, TypeVar

from hightide.sdk.client import trigger_item
from hightide.sdk.journal import current_journal, perform
from hightide.sdk.metadata import flush_before_children
from hightide.sdk.models import BatchHandle, BatchResult, RunHandle, TaskRunResult

R = TypeVar("R")


class TaskRunPromise(Generic[R]):
    """What ``trigger_and_wait`` returns: await it for a ``TaskRunResult``, or ``await ....unwrap()``
    for the output (``SubtaskUnwrapError`` if the child failed)."""

    def __init__(self, start: Callable[[], Awaitable[TaskRunResult[R]]]) -> None:
        self._start = start
        self.started = False

    def __await__(self) -> Generator[Any, None, TaskRunResult[R]]:
        self.started = True
        return self._start().__await__()  # the operation starts (takes its position) when awaited

    async def unwrap(self) -> R:
        return (await self).unwrap()


def in_run() -> bool:
    return current_journal() is not None


def items_body(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Batch items as the journal records them; the parent is always the current run."""
    body = []
    for i, item in enumerate(items):
        field = f"items[{i}].options" if len(items) > 1 else "options"
        entry = trigger_item(item.get("task"), item.get("payload"), item.get("options") or {}, field)
        entry["options"].pop("parent_run_id", None)
        body.append(entry)
    return body


async def trigger(task_id: str, items: Sequence[dict[str, Any]], kind: str = "trigger") -> BatchHandle:
    """``trigger`` / ``batch_trigger`` inside a run."""
    await flush_before_children()
    entry = await perform(kind, task_id, {"items": items_body(items)}, f"{kind}()")
    return BatchHandle([RunHandle(r["id"], r["task_id"], r["is_cached"]) for r in entry["result"]["runs"]])


async def trigger_and_wait(task_id: str, items: Sequence[dict[str, Any]], kind: str) -> BatchResult[Any]:
    """``trigger_and_wait`` / ``batch_trigger_and_wait``: the children's results, in input order."""
    await flush_before_children()
    entry = await perform(kind, task_id, {"items": items_body(items)}, f"{kind}()")
    return BatchResult([TaskRunResult.from_json(r) for r in entry["result"]["runs"]])
