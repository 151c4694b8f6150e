"""``AlertDeliverer``: sends alerts' deliveries, a background service of every server.

It takes the deliveries due (leased, so that two servers never send one at once), POSTs each event
to its webhook signed with the webhook's secret (``core/alerts.py``), and records the try: a 2xx
answer delivers it, anything else (another status, a timeout, a refused connection) is tried again
later. Redirects are not followed. The body of a delivery is built at its first try and kept, so
every retry (and a redelivery) sends the same bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import anyio
import httpx

from hightide.core.alerts import (
    ALERT_TEST,
    DELIVERY_HEADER,
    EVENT_HEADER,
    FAILED_FOR_ALERTS,
    REQUEST_TIMEOUT,
    SIGNATURE_HEADER,
    signature,
)
from hightide.engine.runs import RunEngine
from hightide.server.serialize import iso, run_json
from hightide.store.alerts import Alert, Delivery, Try
from hightide.store.changes import Change
from hightide.store.records import dumps

log = logging.getLogger(__name__)

MAX_ERROR = 300  # characters of a receiver's answer kept in the log


class AlertDeliverer:
    """Sends what is due, then sleeps until the next retry is due (at most ``poll`` seconds), or
    until a run fails for good, on this server or (PostgreSQL) another, or a test or redelivery is
    asked for: an idle server asks the database nothing more than every ``poll`` seconds."""

    def __init__(
        self, engine: RunEngine, public_url: str | None = None, poll: float = 10.0, concurrency: int = 8
    ) -> None:
        self.engine = engine
        self.public_url = public_url.rstrip("/") if public_url else None
        self.poll = poll
        self.concurrency = concurrency
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _changed(self, changes: Sequence[Change]) -> None:
        """A store listener (any thread): a run that failed for good may have made deliveries."""
        if self._loop is not None and any(c.status in FAILED_FOR_ALERTS for c in changes):
            self._poke()

    def _poke(self, _at: float | None = None) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nothing waits any more
                self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.engine.store.add_listener(self._changed)
        self.engine.alerts.asked.subscribe(self._poke)
        try:
            await self._deliver()
        finally:
            self.engine.alerts.asked.unsubscribe(self._poke)
            self.engine.store.remove_listener(self._changed)

    async def _deliver(self) -> None:
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT, follow_redirects=False, limits=limits) as client:
            while not self._stop.is_set():
                self._wake.clear()  # before the look: a wake-up during it means "look again"
                try:
                    due = await anyio.to_thread.run_sync(self.engine.alerts.take_due, self.concurrency)
                    await asyncio.gather(*(self._send(client, d, a) for d, a in due))
                    nxt = await anyio.to_thread.run_sync(self.engine.alerts.next_due_at)
                except Exception:  # a database hiccup must not stop deliveries: log, wait, go on
                    log.exception("alert deliveries pass failed; retrying")
                    due, nxt = [], None
                if len(due) < self.concurrency:  # a full batch means more may be due: go on at once
                    wait = self.poll if nxt is None else min(self.poll, max(0.05, nxt - time.time()))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=wait)

    async def _send(self, client: httpx.AsyncClient, delivery: Delivery, alert: Alert) -> None:
        body: str = delivery.body if delivery.body else await anyio.to_thread.run_sync(self.body, delivery)
        sent_at = time.time()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Hightide-Alerts/1",
            SIGNATURE_HEADER: signature(alert.secret, int(sent_at), body.encode()),
            EVENT_HEADER: delivery.event,
            DELIVERY_HEADER: delivery.id,
        }
        status: int | None = None
        error: str | None = None
        try:
            response = await client.post(alert.url, content=body.encode(), headers=headers)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}: {response.text[:MAX_ERROR]}".rstrip(": ")
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:  # no answer, or a URL no request can go to
            error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR] if str(exc) else type(exc).__name__
        tried = Try(sent_at, status, error, round((time.time() - sent_at) * 1000, 1))
        await anyio.to_thread.run_sync(self.engine.alerts.record, delivery, body, tried)

    def body(self, delivery: Delivery) -> str:
        """The event a delivery sends, as JSON (blocking: reads the run)."""
        env = self.engine.store.environments.get_environment_by_id(delivery.environment_id)
        data: dict[str, Any]
        if delivery.event == ALERT_TEST:
            data = {"message": "A test event from Hightide: this webhook is reachable."}
        else:
            run = self.engine.store.runs.get_run(delivery.run_id) if delivery.run_id else None
            data = {"run": run_json(run) if run is not None else {"id": delivery.run_id}}
            if env is not None and self.public_url:
                data["dashboard_url"] = (
                    f"{self.public_url}/projects/{env.project_slug}/env/{env.slug}/runs/{delivery.run_id}"
                )
        event = {
            "id": delivery.event_id,
            "type": delivery.event,
            "created_at": iso(delivery.created_at),
            "environment": {
                "id": delivery.environment_id,
                "slug": env.slug if env else None,
                "project": env.project_slug if env else None,
            },
            "data": data,
        }
        return dumps(event)
