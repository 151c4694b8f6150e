"""Bulk actions of the Runs page: cancel or replay the runs selected on it.

A selection is a list of run ids, at most a page of them (``BULK_LIMIT``): each run goes through the
engine's own ``control.cancel`` / ``control.replay``, a few at a time in threads, and what happened
to each is summed up in one message. Acting on every run of a filter (any number of them) is a job
for the background, not for a request: ``Selection`` is where such a selection will be told apart
(by its ``RunFilter``) and handed to a job instead of ``apply``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import anyio
import anyio.to_thread

from hightide.engine import RunEngine
from hightide.errors import ConflictError, HightideError, NotFoundError
from hightide.server.dashboard.flash import Flash
from hightide.store.records import Environment, Run

BULK_LIMIT = 50  # the page size: a selection is what one page shows
THREADS = 4  # runs changed at once (each is a transaction; SQLite writes one at a time anyway)
SHOWN_FAILURES = 3  # failures named in the message; the rest are counted


class BulkAction(StrEnum):
    CANCEL = "cancel"
    REPLAY = "replay"


@dataclass(frozen=True)
class Selection:
    """The runs to act on: their ids, as ticked on the page."""

    run_ids: tuple[str, ...]

    @classmethod
    def of(cls, values: list[str]) -> Selection:
        return cls(tuple(dict.fromkeys(v.strip() for v in values if v.strip())))


@dataclass
class Outcome:
    action: BulkAction
    done: list[str] = field(default_factory=list)  # the runs cancelled, or the new runs of replays
    finished: list[str] = field(default_factory=list)  # already finished: nothing to cancel
    failed: list[tuple[str, str]] = field(default_factory=list)  # run id, what went wrong

    def message(self) -> Flash:
        verb = "Cancelled" if self.action is BulkAction.CANCEL else "Replayed"
        parts = [f"{verb} {_runs(len(self.done))}"]
        if self.finished:
            parts.append(f"{_count(len(self.finished), 'was', 'were')} already finished")
        if self.failed:
            named = "; ".join(f"{run_id}: {why}" for run_id, why in self.failed[:SHOWN_FAILURES])
            more = len(self.failed) - SHOWN_FAILURES
            tail = f" (and {more} more)" if more > 0 else ""
            parts.append(f"{_count(len(self.failed), 'failed', 'failed')}: {named}{tail}")
        return Flash("error" if self.failed else "ok", "; ".join(parts))


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


async def apply(engine: RunEngine, env: Environment, action: BulkAction, selection: Selection) -> Outcome:
    """Do ``action`` to each selected run (``THREADS`` at a time); each run's result is kept, so
    that one failure does not hide what happened to the others."""
    act: Callable[[Environment, str], Run] = (
        engine.control.cancel if action is BulkAction.CANCEL else engine.control.replay
    )
    outcome = Outcome(action)
    results: dict[str, tuple[str, str]] = {}
    limiter = anyio.CapacityLimiter(THREADS)

    async def one(run_id: str) -> None:
        try:
            run = await anyio.to_thread.run_sync(act, env, run_id, limiter=limiter)
            results[run_id] = ("done", run.id)
        except ConflictError as exc:
            already = action is BulkAction.CANCEL and exc.details.get("status") is not None
            results[run_id] = ("finished", "") if already else ("failed", exc.message)
        except NotFoundError:
            results[run_id] = ("failed", "no such run in this environment")
        except HightideError as exc:
            results[run_id] = ("failed", exc.message)

    async with anyio.create_task_group() as tg:
        for run_id in selection.run_ids:
            tg.start_soon(one, run_id)
    for run_id in selection.run_ids:  # in the order they were selected
        kind, value = results[run_id]
        if kind == "done":
            outcome.done.append(value)
        elif kind == "finished":
            outcome.finished.append(run_id)
        else:
            outcome.failed.append((run_id, value))
    return outcome


__all__ = ["BULK_LIMIT", "BulkAction", "Outcome", "Selection", "apply"]
