"""``Client``: the blocking twin of ``AsyncClient`` for Django, Flask and scripts.

It runs one private event loop in a background thread and forwards each call to an
``AsyncClient`` there, so the blocking surface is a thin facade over the async core.
"""

from __future__ import annotations

import asyncio
import builtins
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

from hightide.sdk.client import AsyncClient
from hightide.sdk.models import BatchHandle, LogRecord, Run, RunHandle


class _Loop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="hightide-client", daemon=True)
        self.thread.start()

    def call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


class SyncRuns:
    def __init__(self, loop: _Loop, client: AsyncClient) -> None:
        self._loop, self._client = loop, client

    def retrieve(self, run_id: str) -> Run:
        return self._loop.call(self._client.runs.retrieve(run_id))

    def list(self, **filters: Any) -> Iterator[Run]:
        agen = self._client.runs.list(**filters)
        while True:
            try:
                yield self._loop.call(agen.__anext__())
            except StopAsyncIteration:
                return

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


class Client:
    """Blocking client.

    >>> client = Client()                       # HIGHTIDE_API_URL / HIGHTIDE_SECRET_KEY or dev.env
    >>> handle = client.trigger("child-task", {"data": 1})
    >>> client.runs.retrieve(handle.id).status
    """

    def __init__(self, *, api_url: str | None = None, secret_key: str | None = None, timeout: float = 30.0) -> None:
        self._loop = _Loop()
        self._client: AsyncClient = self._loop.call(self._make(api_url, secret_key, timeout))
        self.runs = SyncRuns(self._loop, self._client)

    @staticmethod
    async def _make(api_url: str | None, secret_key: str | None, timeout: float) -> AsyncClient:
        return AsyncClient(api_url=api_url, secret_key=secret_key, timeout=timeout)

    def trigger(self, task_id: str, payload: Any = None, **options: Any) -> RunHandle[Any]:
        return self._loop.call(self._client.trigger(task_id, payload, **options))

    def batch_trigger(self, items: list[dict[str, Any]], task_id: str | None = None) -> BatchHandle:
        return self._loop.call(self._client.batch_trigger(items, task_id))

    def close(self) -> None:
        self._loop.call(self._client.aclose())
        self._loop.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
