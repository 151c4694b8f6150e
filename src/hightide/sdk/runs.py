"""``runs``: retrieve, list, cancel, replay, reschedule, poll and subscribe to runs with the default
client; ``runs.bulk``: cancel or replay many in the background."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator
from typing import Any

from hightide.sdk.defaults import default_client
from hightide.sdk.models import BulkAction, LogRecord, Run, RunHandle


async def retrieve(run_id: str) -> Run:
    return await default_client().runs.retrieve(run_id)


async def list(**filters: Any) -> AsyncIterator[Run]:
    async for run in default_client().runs.list(**filters):
        yield run


async def cancel(run_id: str) -> Run:
    return await default_client().runs.cancel(run_id)


async def replay(run_id: str) -> RunHandle[Any]:
    return await default_client().runs.replay(run_id)


async def reschedule(run_id: str, *, delay: Any) -> Run:
    return await default_client().runs.reschedule(run_id, delay=delay)


async def poll(run_id: str, *, interval: float = 0.5, timeout: float | None = None) -> Run:
    return await default_client().runs.poll(run_id, interval=interval, timeout=timeout)


async def logs(run_id: str) -> builtins.list[LogRecord]:
    return await default_client().runs.logs(run_id)


async def update_metadata(run_id: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """Replace the metadata of a run from outside it; returns the run's new metadata.

    >>> await runs.update_metadata(run_id, {"approved_by": "ada"})
    """
    return await default_client().runs.update_metadata(run_id, metadata)


def subscribe(run_id: str) -> AsyncIterator[Run]:
    """``async for run in runs.subscribe(run_id)``: the run now and on every change, until it finishes."""
    return default_client().runs.subscribe(run_id)


def subscribe_to_tag(tag: str, *, limit: int = 50) -> AsyncIterator[Run]:
    """``async for run in runs.subscribe_to_tag(tag)``: the newest runs of ``tag``, then every change."""
    return default_client().runs.subscribe_to_tag(tag, limit=limit)


class _Bulk:
    """``runs.bulk``: the default client's bulk actions (see ``hightide.sdk.bulk.BulkClient``)."""

    async def cancel(self, **selection: Any) -> BulkAction:
        """``await runs.bulk.cancel(status=["QUEUED"], task="send-email")`` or ``(ids=[...])``."""
        return await default_client().runs.bulk.cancel(**selection)

    async def replay(self, **selection: Any) -> BulkAction:
        return await default_client().runs.bulk.replay(**selection)

    async def retrieve(self, bulk_id: str) -> BulkAction:
        return await default_client().runs.bulk.retrieve(bulk_id)

    async def wait(self, bulk_id: str, *, interval: float = 0.5, timeout: float | None = None) -> BulkAction:
        return await default_client().runs.bulk.wait(bulk_id, interval=interval, timeout=timeout)

    async def abort(self, bulk_id: str) -> BulkAction:
        return await default_client().runs.bulk.abort(bulk_id)

    def list(self) -> AsyncIterator[BulkAction]:
        return default_client().runs.bulk.list()


bulk = _Bulk()
