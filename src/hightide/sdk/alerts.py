"""``alerts``: webhooks for an environment's events, with the default client, and checking the
signature of what a webhook receives.

>>> from hightide import alerts
>>> hook = await alerts.create(url="https://example.com/hooks/hightide", events=["run.failed"])
>>> # in the receiver, with the raw body and the Hightide-Signature header:
>>> alerts.verify_signature(body, request.headers["Hightide-Signature"], hook.secret)
True
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterable

from hightide.core.alerts import DELIVERY_HEADER, EVENT_HEADER, EVENTS, SIGNATURE_HEADER, SIGNATURE_TOLERANCE, verify
from hightide.sdk.defaults import default_client
from hightide.sdk.models import AlertDelivery, AlertInfo

__all__ = [
    "DELIVERY_HEADER",
    "EVENTS",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "create",
    "delete",
    "deliveries",
    "delivery",
    "list",
    "redeliver",
    "retrieve",
    "test",
    "update",
    "verify_signature",
]


def verify_signature(
    body: bytes | str, header: str | None, secret: str, *, tolerance: float = SIGNATURE_TOLERANCE
) -> bool:
    """Whether ``header`` (the ``Hightide-Signature`` of a request) signs ``body`` (its raw bytes, as
    received) with the webhook's ``secret``, at a time within ``tolerance`` seconds of now: refuse a
    request for which it is False."""
    raw = body.encode() if isinstance(body, str) else body
    return verify(raw, header, secret, time.time(), tolerance)


async def create(*, url: str, events: Iterable[str], description: str | None = None, enabled: bool = True) -> AlertInfo:
    """A webhook receiving ``events`` (``["run.failed"]``) at ``url``; its ``secret`` signs them."""
    return await default_client().alerts.create(url=url, events=events, description=description, enabled=enabled)


async def list() -> builtins.list[AlertInfo]:
    """Every webhook of the environment, newest first (without their secrets)."""
    return await default_client().alerts.list()


async def retrieve(alert_id: str) -> AlertInfo:
    return await default_client().alerts.retrieve(alert_id)


async def update(
    alert_id: str,
    *,
    url: str | None = None,
    events: Iterable[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
    rotate_secret: bool = False,
) -> AlertInfo:
    """Change what is given; ``rotate_secret=True`` makes a new secret."""
    return await default_client().alerts.update(
        alert_id, url=url, events=events, description=description, enabled=enabled, rotate_secret=rotate_secret
    )


async def delete(alert_id: str) -> None:
    await default_client().alerts.delete(alert_id)


async def test(alert_id: str) -> AlertDelivery:
    """Send an ``alert.test`` event to the webhook now."""
    return await default_client().alerts.test(alert_id)


async def deliveries(alert_id: str, *, status: str | None = None, limit: int = 50) -> builtins.list[AlertDelivery]:
    """The webhook's latest deliveries with their tries, newest first."""
    return await default_client().alerts.deliveries(alert_id, status=status, limit=limit)


async def delivery(alert_id: str, delivery_id: str) -> AlertDelivery:
    return await default_client().alerts.delivery(alert_id, delivery_id)


async def redeliver(alert_id: str, delivery_id: str) -> AlertDelivery:
    """Send a delivery again now, with the same body."""
    return await default_client().alerts.redeliver(alert_id, delivery_id)
