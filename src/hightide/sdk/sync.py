"""``Client``: the blocking twin of ``AsyncClient`` for Django, Flask and scripts.

It runs one private event loop in a background thread and forwards each call to an
``AsyncClient`` there, so the blocking surface is a thin facade over the async core.
"""

from __future__ import annotations

import asyncio
import builtins
import contextvars
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from typing import Any

from hightide.sdk.client import AsyncClient
from hightide.sdk.models import (
    AlertDelivery,
    AlertInfo,
    BatchHandle,
    BulkAction,
    LogRecord,
    QueueInfo,
    Run,
    RunHandle,
    ScheduleInfo,
    Token,
)


class _Loop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="hightide-client", daemon=True)
        self.thread.start()

    def call(self, coro: Any) -> Any:
        # In the caller's context: runs it triggers join the caller's OpenTelemetry trace.
        future: Future[Any] = asyncio.run_coroutine_threadsafe(_in_context(coro, contextvars.copy_context()), self.loop)
        return future.result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


async def _in_context(coro: Any, context: contextvars.Context) -> Any:
    return await asyncio.get_running_loop().create_task(coro, context=context)


def _iterate(loop: _Loop, agen: Any) -> Iterator[Any]:
    while True:
        try:
            yield loop.call(agen.__anext__())
        except StopAsyncIteration:
            return


class SyncWaitpoints:
    """Waitpoint tokens, blocking (``Client().waitpoints.complete_token(token_id, data)``)."""

    def __init__(self, loop: _Loop, client: AsyncClient) -> None:
        self._loop, self._client = loop, client

    def create_token(self, **options: Any) -> Token:
        return self._loop.call(self._client.waitpoints.create_token(**options))

    def complete_token(self, token_id: str, data: Any = None) -> Token:
        return self._loop.call(self._client.waitpoints.complete_token(token_id, data))

    def retrieve_token(self, token_id: str) -> Token:
        return self._loop.call(self._client.waitpoints.retrieve_token(token_id))

    def list_tokens(self, **filters: Any) -> Iterator[Token]:
        return _iterate(self._loop, self._client.waitpoints.list_tokens(**filters))


class SyncBulk:
    """Bulk actions, blocking (``Client().runs.bulk.cancel(status=["QUEUED"])``)."""

    def __init__(self, loop: _Loop, client: AsyncClient) -> None:
        self._loop, self._client = loop, client

    def cancel(self, **selection: Any) -> BulkAction:
        return self._loop.call(self._client.runs.bulk.cancel(**selection))

    def replay(self, **selection: Any) -> BulkAction:
        return self._loop.call(self._client.runs.bulk.replay(**selection))

    def retrieve(self, bulk_id: str) -> BulkAction:
        return self._loop.call(self._client.runs.bulk.retrieve(bulk_id))

    def wait(self, bulk_id: str, *, interval: float = 0.5, timeout: float | None = None) -> BulkAction:
        return self._loop.call(self._client.runs.bulk.wait(bulk_id, interval=interval, timeout=timeout))

    def abort(self, bulk_id: str) -> BulkAction:
        return self._loop.call(self._client.runs.bulk.abort(bulk_id))

    def list(self) -> Iterator[BulkAction]:
        return _iterate(self._loop, self._client.runs.bulk.list())


class SyncRuns:
    def __init__(self, loop: _Loop, client: AsyncClient) -> None:
        self._loop, self._client = loop, client
        self.bulk = SyncBulk(loop, client)

    def retrieve(self, run_id: str) -> Run:
        return self._loop.call(self._client.runs.retrieve(run_id))

    def list(self, **filters: Any) -> Iterator[Run]:
        return _iterate(self._loop, self._client.runs.list(**filters))

    def cancel(self, run_id: str) -> Run:
        return self._loop.call(self._client.runs.cancel(run_id))

    def replay(self, run_id: str) -> RunHandle[Any]:
        return self._loop.call(self._client.runs.replay(run_id))

    def reschedule(self, run_id: str, *, delay: Any) -> Run:
        return self._loop.call(self._client.runs.reschedule(run_id, delay=delay))

    def poll(self, run_id: str, *, interval: float = 0.5, timeout: float | None = None) -> Run:
        return self._loop.call(self._client.runs.poll(run_id, interval=interval, timeout=timeout))

    def logs(self, run_id: str) -> builtins.list[LogRecord]:
        return self._loop.call(self._client.runs.logs(run_id))

    def update_metadata(self, run_id: str, metadata: dict[str, Any]) -> dict[str, Any]:
        return self._loop.call(self._client.runs.update_metadata(run_id, metadata))

    def subscribe(self, run_id: str) -> Iterator[Run]:
        """``for run in client.runs.subscribe(run_id)``: blocking, until the run finishes."""
        return _iterate(self._loop, self._client.runs.subscribe(run_id))

    def subscribe_to_tag(self, tag: str, *, limit: int = 50) -> Iterator[Run]:
        return _iterate(self._loop, self._client.runs.subscribe_to_tag(tag, limit=limit))


class SyncAuth:
    def __init__(self, loop: _Loop, client: AsyncClient) -> None:
        self._loop, self._client = loop, client

    def create_public_token(self, *, read: dict[str, Any], expires_in: Any = None) -> str:
        return self._loop.call(self._client.auth.create_public_token(read=read, expires_in=expires_in))


class SyncQueues:
    """Queues, blocking (``Client().queues.pause("task/send-email")``)."""

    def __init__(self, loop: _Loop, client: AsyncClient) -> None:
        self._loop, self._client = loop, client

    def list(self) -> builtins.list[QueueInfo]:
        return self._loop.call(self._client.queues.list())

    def retrieve(self, name: str) -> QueueInfo:
        return self._loop.call(self._client.queues.retrieve(name))

    def pause(self, name: str) -> QueueInfo:
        return self._loop.call(self._client.queues.pause(name))

    def resume(self, name: str) -> QueueInfo:
        return self._loop.call(self._client.queues.resume(name))

    def override_concurrency_limit(self, name: str, limit: int) -> QueueInfo:
        return self._loop.call(self._client.queues.override_concurrency_limit(name, limit))

    def reset_concurrency_limit(self, name: str) -> QueueInfo:
        return self._loop.call(self._client.queues.reset_concurrency_limit(name))


class SyncSchedules:
    """Schedules, blocking (``Client().schedules.create(task="report", cron="0 9 * * *")``)."""

    def __init__(self, loop: _Loop, client: AsyncClient) -> None:
        self._loop, self._client = loop, client

    def create(
        self,
        *,
        task: str,
        cron: str,
        timezone: str = "UTC",
        external_id: str | None = None,
        deduplication_key: str | None = None,
    ) -> ScheduleInfo:
        return self._loop.call(
            self._client.schedules.create(
                task=task, cron=cron, timezone=timezone, external_id=external_id, deduplication_key=deduplication_key
            )
        )

    def list(self, *, task: str | None = None, kind: str | None = None) -> builtins.list[ScheduleInfo]:
        return self._loop.call(self._client.schedules.list(task=task, kind=kind))

    def retrieve(self, schedule_id: str) -> ScheduleInfo:
        return self._loop.call(self._client.schedules.retrieve(schedule_id))

    def update(
        self,
        schedule_id: str,
        *,
        task: str | None = None,
        cron: str | None = None,
        timezone: str | None = None,
        external_id: str | None = None,
    ) -> ScheduleInfo:
        return self._loop.call(
            self._client.schedules.update(schedule_id, task=task, cron=cron, timezone=timezone, external_id=external_id)
        )

    def delete(self, schedule_id: str) -> None:
        self._loop.call(self._client.schedules.delete(schedule_id))

    def activate(self, schedule_id: str) -> ScheduleInfo:
        return self._loop.call(self._client.schedules.activate(schedule_id))

    def deactivate(self, schedule_id: str) -> ScheduleInfo:
        return self._loop.call(self._client.schedules.deactivate(schedule_id))

    def timezones(self) -> builtins.list[str]:
        return self._loop.call(self._client.schedules.timezones())


class SyncAlerts:
    """Alerts, blocking (``Client().alerts.create(url=..., events=["run.failed"])``)."""

    def __init__(self, loop: _Loop, client: AsyncClient) -> None:
        self._loop, self._client = loop, client

    def create(
        self, *, url: str, events: Iterable[str], description: str | None = None, enabled: bool = True
    ) -> AlertInfo:
        return self._loop.call(
            self._client.alerts.create(url=url, events=events, description=description, enabled=enabled)
        )

    def list(self) -> builtins.list[AlertInfo]:
        return self._loop.call(self._client.alerts.list())

    def retrieve(self, alert_id: str) -> AlertInfo:
        return self._loop.call(self._client.alerts.retrieve(alert_id))

    def update(self, alert_id: str, **changes: Any) -> AlertInfo:
        return self._loop.call(self._client.alerts.update(alert_id, **changes))

    def delete(self, alert_id: str) -> None:
        self._loop.call(self._client.alerts.delete(alert_id))

    def test(self, alert_id: str) -> AlertDelivery:
        return self._loop.call(self._client.alerts.test(alert_id))

    def deliveries(self, alert_id: str, *, status: str | None = None, limit: int = 50) -> builtins.list[AlertDelivery]:
        return self._loop.call(self._client.alerts.deliveries(alert_id, status=status, limit=limit))

    def delivery(self, alert_id: str, delivery_id: str) -> AlertDelivery:
        return self._loop.call(self._client.alerts.delivery(alert_id, delivery_id))

    def redeliver(self, alert_id: str, delivery_id: str) -> AlertDelivery:
        return self._loop.call(self._client.alerts.redeliver(alert_id, delivery_id))


class Client:
    """Blocking client.

    >>> client = Client()                       # HIGHTIDE_API_URL / HIGHTIDE_SECRET_KEY or dev.env
    >>> handle = client.trigger("child-task", {"data": 1})
    >>> client.runs.retrieve(handle.id).status
    """

    def __init__(
        self,
        *,
        api_url: str | None = None,
        secret_key: str | None = None,
        timeout: float = 30.0,
        access_token: str | None = None,
    ) -> None:
        self._loop = _Loop()
        self._client: AsyncClient = self._loop.call(self._make(api_url, secret_key, timeout, access_token))
        self.runs = SyncRuns(self._loop, self._client)
        self.waitpoints = SyncWaitpoints(self._loop, self._client)
        self.auth = SyncAuth(self._loop, self._client)
        self.queues = SyncQueues(self._loop, self._client)
        self.schedules = SyncSchedules(self._loop, self._client)
        self.alerts = SyncAlerts(self._loop, self._client)

    @staticmethod
    async def _make(
        api_url: str | None, secret_key: str | None, timeout: float, access_token: str | None
    ) -> AsyncClient:
        return AsyncClient(api_url=api_url, secret_key=secret_key, timeout=timeout, access_token=access_token)

    def trigger(self, task_id: str, payload: Any = None, **options: Any) -> RunHandle[Any]:
        return self._loop.call(self._client.trigger(task_id, payload, **options))

    def batch_trigger(self, items: list[dict[str, Any]], task_id: str | None = None) -> BatchHandle:
        return self._loop.call(self._client.batch_trigger(items, task_id))

    def reset_idempotency_key(self, task_id: str, key: str) -> bool:
        return self._loop.call(self._client.reset_idempotency_key(task_id, key))

    def close(self) -> None:
        self._loop.call(self._client.aclose())
        self._loop.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
