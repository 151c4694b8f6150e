"""``runs.bulk``: cancel or replay many runs in the background, by ids or by a filter.

>>> job = await runs.bulk.cancel(status=["QUEUED", "DELAYED"], task="send-email")
>>> job = await runs.bulk.wait(job.id)            # or poll runs.bulk.retrieve(job.id)
>>> job.succeeded, job.skipped, job.failed
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from hightide.sdk.http import ApiSession
from hightide.sdk.models import BulkAction


def run_filter(
    status: str | Sequence[str] | None = None,
    task: str | Sequence[str] | None = None,
    tag: str | None = None,
    version: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
) -> dict[str, Any]:
    """A filter of runs as the API takes it (``GET /api/v1/runs``'s query, a bulk action's filter)."""
    flt: dict[str, Any] = {}
    if status:
        flt["status"] = [status] if isinstance(status, str) else list(status)
    if task:
        flt["task"] = [task] if isinstance(task, str) else list(task)
    if tag:
        flt["tag"] = tag
    if version:
        flt["version"] = version
    if created_from:
        flt["from"] = created_from.isoformat()
    if created_to:
        flt["to"] = created_to.isoformat()
    return flt


def _selection(ids: Sequence[str] | None, *filters: Any) -> dict[str, Any]:
    return {"ids": list(ids)} if ids is not None else {"filter": run_filter(*filters)}


class BulkClient:
    def __init__(self, session: ApiSession) -> None:
        self._session = session

    async def cancel(
        self,
        *,
        ids: Sequence[str] | None = None,
        status: str | Sequence[str] | None = None,
        task: str | Sequence[str] | None = None,
        tag: str | None = None,
        version: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
    ) -> BulkAction:
        """Cancel the runs ``ids``, or those the filter selects now (runs made later are left alone);
        returns at once. Finished runs are skipped."""
        body = _selection(ids, status, task, tag, version, created_from, created_to)
        return await self._create("cancel", body)

    async def replay(
        self,
        *,
        ids: Sequence[str] | None = None,
        status: str | Sequence[str] | None = None,
        task: str | Sequence[str] | None = None,
        tag: str | None = None,
        version: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
    ) -> BulkAction:
        """Replay the runs ``ids``, or those the filter selects now (the replays are not replayed)."""
        body = _selection(ids, status, task, tag, version, created_from, created_to)
        return await self._create("replay", body)

    async def _create(self, action: str, selection: dict[str, Any]) -> BulkAction:
        data = await self._session.request("POST", "/api/v1/bulk-actions", json={"action": action, **selection})
        return BulkAction.from_json(data)

    async def retrieve(self, bulk_id: str) -> BulkAction:
        return BulkAction.from_json(await self._session.request("GET", f"/api/v1/bulk-actions/{bulk_id}"))

    async def abort(self, bulk_id: str) -> BulkAction:
        """Stop after the page it is on; what it did stays done."""
        return BulkAction.from_json(await self._session.request("POST", f"/api/v1/bulk-actions/{bulk_id}/abort"))

    async def wait(self, bulk_id: str, *, interval: float = 0.5, timeout: float | None = None) -> BulkAction:
        """The action once it finished (``TimeoutError`` after ``timeout`` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            action = await self.retrieve(bulk_id)
            if action.is_finished:
                return action
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"bulk action {bulk_id} still running after {timeout} s")
            await asyncio.sleep(interval)

    async def list(self, *, page_size: int = 20) -> AsyncIterator[BulkAction]:
        """Newest first, following pages as you iterate."""
        params: dict[str, Any] = {"limit": page_size}
        while True:
            page = await self._session.request("GET", "/api/v1/bulk-actions", params=params)
            for data in page["data"]:
                yield BulkAction.from_json(data)
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]


__all__ = ["BulkAction", "BulkClient"]
