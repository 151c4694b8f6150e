"""The Runs page's "Bulk actions" strip: the environment's bulk actions running now and the few
most recent finished ones, as the page and its polled fragment (``GET .../runs/bulk-actions``)
show them. While one runs, the strip asks for itself again every ``POLL_SECONDS``; once none runs,
the strip it gets back has no trigger, so the polling stops by itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hightide.core.states import RunStatus
from hightide.engine.runs import RunEngine
from hightide.server.dashboard.render import status_label, when
from hightide.store.bulk import ABORTED, COMPLETED, RUNNING
from hightide.store.records import BulkAction, Environment

POLL_SECONDS = 1
READ = 20  # the newest actions read: the running ones are among them
SHOWN_FINISHED = 3  # finished actions shown beside the running ones
FINISHED_FOR = 24 * 3600.0  # a finished action leaves the strip after a day
SHOWN_FAILURES = 5  # failures listed under "first failures"


def _runs(n: int) -> str:
    return f"{n:,} run" if n == 1 else f"{n:,} runs"


def describe_filter(flt: dict[str, Any], made_at: float) -> str:
    """``tag = nightly · status Queued or Delayed · created from 2026-12-01 00:00:00``."""
    parts = []
    if flt.get("statuses"):
        parts.append("status " + " or ".join(status_label(s) for s in flt["statuses"]))
    if flt.get("task_ids"):
        parts.append("task " + " or ".join(flt["task_ids"]))
    if flt.get("tag"):
        parts.append(f"tag {flt['tag']}")
    if flt.get("version"):
        parts.append(f"version {flt['version']}")
    if flt.get("created_from") is not None:
        parts.append(f"created from {when(flt['created_from'])} UTC")
    to = flt.get("created_to")
    if to is not None and to < made_at:  # else it is only the action's own bound: runs made before it
        parts.append(f"created before {when(to)} UTC")
    return " · ".join(parts) or "every run"


@dataclass(frozen=True)
class BulkView:
    action: BulkAction

    @property
    def id(self) -> str:
        return self.action.id

    @property
    def verb(self) -> str:
        return "Cancel" if self.action.action == "cancel" else "Replay"

    @property
    def done_label(self) -> str:
        return "cancelled" if self.action.action == "cancel" else "replayed"

    @property
    def running(self) -> bool:
        return self.action.status == RUNNING

    @property
    def status(self) -> str:
        return {RUNNING: "Running", COMPLETED: "Completed", ABORTED: "Aborted"}.get(self.action.status, "?")

    @property
    def status_class(self) -> str:
        """The status chip's colour, as a run's of the same mood."""
        return {RUNNING: RunStatus.EXECUTING, COMPLETED: RunStatus.COMPLETED}.get(
            self.action.status, RunStatus.DELAYED
        ).value.lower()

    @property
    def selected(self) -> str:
        """What it acts on, in words."""
        selection = self.action.selection
        if "ids" in selection:
            return f"{_runs(len(selection['ids']))} ticked"
        return f"all {_runs(self.action.total)} matching " + describe_filter(
            selection.get("filter", {}), self.action.created_at
        )

    @property
    def percent(self) -> int:
        a = self.action
        return 100 if not a.total else min(100, round(100 * a.processed / a.total))

    @property
    def failures(self) -> list[tuple[str, str]]:
        return [(f[0], f[1]) for f in self.action.failures[:SHOWN_FAILURES] if len(f) >= 2]

    @property
    def more_failures(self) -> int:
        return self.action.failed - len(self.failures)


def strip(engine: RunEngine, env: Environment) -> list[BulkView]:
    """The running actions, then up to ``SHOWN_FINISHED`` finished within ``FINISHED_FOR``, newest first."""
    actions, _ = engine.bulk.list(env, READ)
    now = engine.clock()
    running = [a for a in actions if a.status == RUNNING]
    finished = [a for a in actions if a.status != RUNNING and (a.finished_at or a.updated_at) >= now - FINISHED_FOR]
    return [BulkView(a) for a in running + finished[:SHOWN_FINISHED]]


def any_running(views: list[BulkView]) -> bool:
    return any(v.running for v in views)


__all__ = ["POLL_SECONDS", "BulkView", "any_running", "describe_filter", "strip"]
