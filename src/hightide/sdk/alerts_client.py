"""``AlertsClient``: webhooks for an environment's events, and their delivery log, over the API."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from hightide.sdk.http import ApiSession
from hightide.sdk.models import AlertDelivery, AlertInfo


class AlertsClient:
    """Alerts: create, list, retrieve, update, delete and test webhooks; read and redeliver their
    deliveries."""

    def __init__(self, session: ApiSession) -> None:
        self._session = session

    async def create(
        self, *, url: str, events: Iterable[str], description: str | None = None, enabled: bool = True
    ) -> AlertInfo:
        """POST each of ``events`` (``["run.failed"]``) to ``url``, signed with the new webhook's
        ``secret`` (check it with ``alerts.verify_signature``).

        >>> hook = await alerts.create(url="https://example.com/hooks/hightide", events=["run.failed"])
        >>> hook.secret
        'whsec_...'
        """
        body = {"url": url, "events": _events(events), "description": description, "enabled": enabled}
        return AlertInfo.from_json(await self._session.request("POST", "/api/v1/alerts", json=body))

    async def list(self, *, limit: int = 50) -> builtins.list[AlertInfo]:
        """Every webhook of the environment (all pages), newest first; without their secrets."""
        params: dict[str, Any] = {"limit": limit}
        out: builtins.list[AlertInfo] = []
        while True:
            page = await self._session.request("GET", "/api/v1/alerts", params=params)
            out += [AlertInfo.from_json(a) for a in page["data"]]
            if not page.get("next_cursor"):
                return out
            params["cursor"] = page["next_cursor"]

    async def retrieve(self, alert_id: str) -> AlertInfo:
        """A webhook with its secret."""
        return AlertInfo.from_json(await self._session.request("GET", alert_path(alert_id)))

    async def update(
        self,
        alert_id: str,
        *,
        url: str | None = None,
        events: Iterable[str] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
        rotate_secret: bool = False,
    ) -> AlertInfo:
        """Change what is given; ``rotate_secret=True`` makes a new secret (in the answer) and the old
        one stops signing at once."""
        given = {
            "url": url,
            "events": None if events is None else _events(events),
            "description": description,
            "enabled": enabled,
        }
        body = {k: v for k, v in given.items() if v is not None} | {"rotate_secret": rotate_secret}
        return AlertInfo.from_json(await self._session.request("PUT", alert_path(alert_id), json=body))

    async def delete(self, alert_id: str) -> None:
        """Delete a webhook with its delivery log."""
        await self._session.request("DELETE", alert_path(alert_id))

    async def test(self, alert_id: str) -> AlertDelivery:
        """Send an ``alert.test`` event to the webhook now; follow it with ``alerts.delivery``."""
        return AlertDelivery.from_json(await self._session.request("POST", alert_path(alert_id, "test")))

    async def deliveries(
        self, alert_id: str, *, status: str | None = None, limit: int = 50
    ) -> builtins.list[AlertDelivery]:
        """The webhook's latest ``limit`` deliveries, newest first (``status``: ``PENDING``,
        ``DELIVERED`` or ``FAILED``)."""
        params: dict[str, Any] = {"limit": limit}
        if status is not None:
            params["status"] = status
        page = await self._session.request("GET", alert_path(alert_id, "deliveries"), params=params)
        return [AlertDelivery.from_json(d) for d in page["data"]]

    async def delivery(self, alert_id: str, delivery_id: str) -> AlertDelivery:
        """A delivery with its tries and the event it sends (``body``)."""
        path = alert_path(alert_id, "deliveries/" + quote(delivery_id, safe=""))
        return AlertDelivery.from_json(await self._session.request("GET", path))

    async def redeliver(self, alert_id: str, delivery_id: str) -> AlertDelivery:
        """Send a delivery again now: the same body, a fresh set of tries."""
        path = alert_path(alert_id, "deliveries/" + quote(delivery_id, safe="") + "/redeliver")
        return AlertDelivery.from_json(await self._session.request("POST", path))


def _events(events: Iterable[str]) -> builtins.list[str]:
    return [events] if isinstance(events, str) else builtins.list(events)


def alert_path(alert_id: str, action: str | None = None) -> str:
    path = "/api/v1/alerts/" + quote(alert_id, safe="")
    return f"{path}/{action}" if action else path
