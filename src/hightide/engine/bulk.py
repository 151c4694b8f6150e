"""Bulk actions: cancel or replay many runs, chosen by ids or by a filter, in the background.

Making one returns at once with its id and the number of runs it selects; the server's bulk loop
then works through them a page (``PAGE`` runs) at a time (a page's cancels in one transaction with
``control.cancel_many``, its replays one by one with ``control.replay``), and records the page's
results with where the next page starts. A filter is bounded by when the action was made, so runs made since (its own replays among
them) are never in it. A run already finished is *skipped* by a cancel; what fails is counted with
the first few reasons. Several servers share the work safely: an action is worked on only by the
server that holds its lease."""

from __future__ import annotations

import builtins
import time
from dataclasses import asdict
from typing import Any

from hightide.core.ids import new_id
from hightide.core.limits import MAX_ID_LENGTH, check_text
from hightide.engine.base import Due, EngineCore
from hightide.engine.control import Control
from hightide.errors import ConflictError, HightideError, NotFoundError, ValidationError
from hightide.store.bulk import RUNNING
from hightide.store.records import BulkAction, Environment, RunFilter

ACTIONS = ("cancel", "replay")
MAX_IDS = 10_000
PAGE = 100
LEASE = 60.0  # seconds a server holds an action while it works on a page
BUDGET = 0.5  # seconds of work per call of ``process`` (the loop calls it again at once when busy)


class BulkActions:
    def __init__(self, core: EngineCore, control: Control) -> None:
        self.core = core
        self.store = core.store
        self.asked = Due()
        """Raised when an action is created: this server's bulk loop starts on it at once."""
        self.control = control

    def create(
        self, env: Environment, action: str, *, ids: builtins.list[str] | None = None, flt: RunFilter | None = None
    ) -> BulkAction:
        """A bulk ``action`` ("cancel" or "replay") of the runs ``ids`` or of the runs ``flt`` selects now."""
        if action not in ACTIONS:
            raise ValidationError(f"action: expected one of {list(ACTIONS)}", details={"field": "action"})
        now = self.core.clock()
        if (ids is None) == (flt is None):
            raise ValidationError("give either ids or a filter of the runs", details={"field": "ids"})
        selection: dict[str, Any]
        if ids is not None:
            chosen = list(dict.fromkeys(check_text(i, "ids", MAX_ID_LENGTH) for i in ids))
            if not 1 <= len(chosen) <= MAX_IDS:
                raise ValidationError(f"ids: expected 1 to {MAX_IDS:,} run ids", details={"field": "ids"})
            selection, total = {"ids": chosen}, len(chosen)
        else:
            assert flt is not None
            if flt == RunFilter():
                raise ValidationError(
                    "a filter must name a status, task, tag, version or period: acting on every run of the "
                    "environment is not done by accident",
                    details={"field": "filter"},
                )
            self.core.list_runs(env, flt, 1)  # the filter's own checks (statuses)
            bounded = RunFilter(**{**asdict(flt), "created_to": min(flt.created_to or now, now)})
            selection, total = {"filter": asdict(bounded)}, self.store.runs.count_runs(env.id, bounded)
        made = BulkAction(
            id=new_id("bulk", now),
            environment_id=env.id,
            action=action,
            selection=selection,
            status=RUNNING,
            total=total,
            created_at=now,
            updated_at=now,
        )
        created = self.store.bulk.create(made)
        self.asked()
        return created

    def get(self, env: Environment, bulk_id: str) -> BulkAction:
        found = self.store.bulk.get(bulk_id, env.id)
        if found is None:
            raise NotFoundError(f"bulk action {bulk_id!r} not found", details={"bulk_action": bulk_id})
        return found

    def list(
        self, env: Environment, limit: int = 20, cursor: str | None = None
    ) -> tuple[builtins.list[BulkAction], str | None]:
        return self.store.bulk.list_actions(env.id, limit, cursor)

    def abort(self, env: Environment, bulk_id: str) -> BulkAction:
        """Stop after the page it is on; what was done stays done."""
        found = self.store.bulk.abort(bulk_id, env.id, self.core.clock())
        if found is None:
            raise NotFoundError(f"bulk action {bulk_id!r} not found", details={"bulk_action": bulk_id})
        return found

    # -- the background work ---------------------------------------------------------------
    def process(self, budget: float = BUDGET) -> int:
        """Work on the running actions, a page at a time, for about ``budget`` seconds; returns the
        runs acted on (0: nothing to do)."""
        deadline = time.monotonic() + budget
        done = 0
        for action in self.store.bulk.running():
            while time.monotonic() < deadline:
                acted, finished = self._page(action.id)
                done += acted
                if finished:
                    break
            if time.monotonic() >= deadline:
                break
        return done

    def _page(self, bulk_id: str) -> tuple[int, bool]:
        """One page of the action, if this server can take it: (runs acted on, whether it is over)."""
        action = self.store.bulk.take(bulk_id, self.core.clock(), LEASE)
        if action is None:
            return 0, True
        env = self.store.environments.get_environment_by_id(action.environment_id)
        run_ids, cursor, last = self._next_ids(action)
        succeeded = skipped = 0
        failures: list[tuple[str, str]] = []
        for run_id, error in self._act(action.action, env, run_ids).items():
            if error is None:
                succeeded += 1
            elif isinstance(error, ConflictError) and action.action == "cancel":
                skipped += 1  # already finished: nothing to cancel
            else:
                failures.append((run_id, error.message))
        self.store.bulk.advance(
            action,
            cursor=cursor,
            succeeded=succeeded,
            skipped=skipped,
            failures=failures,
            done=last,
            now=self.core.clock(),
        )
        return len(run_ids), last

    def _act(
        self, action: str, env: Environment | None, run_ids: builtins.list[str]
    ) -> dict[str, HightideError | None]:
        """Cancel (in one transaction) or replay (one by one) ``run_ids``: per run, why not if not."""
        if env is None:
            return dict.fromkeys(run_ids, NotFoundError("its environment no longer exists"))
        if action == "cancel":
            return self.control.cancel_many(env, run_ids) if run_ids else {}
        outcomes: dict[str, HightideError | None] = {}
        for run_id in run_ids:
            try:
                self.control.replay(env, run_id)
                outcomes[run_id] = None
            except HightideError as exc:
                outcomes[run_id] = exc
        return outcomes

    def _next_ids(self, action: BulkAction) -> tuple[builtins.list[str], str | None, bool]:
        """The next page's run ids, the cursor after it, and whether it is the last page."""
        if "ids" in action.selection:
            ids: builtins.list[str] = action.selection["ids"]
            start = int(action.cursor or 0)
            page = ids[start : start + PAGE]
            return page, str(start + len(page)), start + len(page) >= len(ids)
        flt = RunFilter(**{**action.selection["filter"], **_tuples(action.selection["filter"])})
        runs, cursor = self.store.runs.list_runs(action.environment_id, flt, PAGE, action.cursor)
        return [r.id for r in runs], cursor, cursor is None


def _tuples(flt: dict[str, Any]) -> dict[str, Any]:
    """A filter read back from JSON: its lists as the tuples ``RunFilter`` holds."""
    return {k: tuple(v) for k, v in flt.items() if isinstance(v, list)}
