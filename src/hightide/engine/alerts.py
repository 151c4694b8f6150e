"""Alerts: webhooks an environment's events are sent to, and their deliveries.

``run.failed`` deliveries are made by the store in the transaction that fails a run for good; the
server's ``AlertDeliverer`` (``server/alert_delivery.py``) sends them: ``take_due`` leases a batch,
``record`` keeps how each try went and schedules the next one (``core/alerts.py``: 2 s, 10 s, 1 min,
... up to 11 tries over about two days)."""

from __future__ import annotations

import builtins
from typing import Any

from hightide.core.alerts import ALERT_TEST, REQUEST_TIMEOUT, check_events, check_url, retry_delay
from hightide.core.ids import new_id
from hightide.core.limits import MAX_NAME_LENGTH, MAX_PAGE, check_text
from hightide.engine.base import Due, EngineCore
from hightide.errors import NotFoundError, ValidationError
from hightide.store.alert_events import DELIVERY_STATUSES
from hightide.store.alerts import Alert, Delivery, Try, new_secret
from hightide.store.records import Environment

LEASE = 3 * REQUEST_TIMEOUT  # a server that took a delivery and died: another sends it after this


class Alerts:
    def __init__(self, core: EngineCore) -> None:
        self.core = core
        self.store = core.store
        self.asked = Due()
        """Raised when a delivery is asked for (a test, a redelivery): the deliverer looks at once."""

    # -- webhooks ------------------------------------------------------------------------------
    def create(
        self,
        env: Environment,
        url: str,
        events: builtins.list[str],
        description: str | None = None,
        enabled: bool = True,
    ) -> Alert:
        """A webhook receiving ``events`` of ``env`` at ``url``, with a new signing secret."""
        now = self.core.clock()
        alert = Alert(
            id=new_id("alert", now),
            environment_id=env.id,
            url=check_url(url),
            events=check_events(events),
            secret=new_secret(),
            description=_description(description),
            enabled=bool(enabled),
            created_at=now,
            updated_at=now,
        )
        return self.store.alerts.create(alert)

    def list(
        self, env: Environment, limit: int = 50, cursor: str | None = None
    ) -> tuple[builtins.list[Alert], str | None]:
        _check_limit(limit)
        return self.store.alerts.list(env.id, limit, cursor)

    def get(self, env: Environment, alert_id: str) -> Alert:
        alert = self.store.alerts.get(alert_id, env.id)
        if alert is None:
            raise _not_found(alert_id)
        return alert

    def update(
        self,
        env: Environment,
        alert_id: str,
        *,
        url: str | None = None,
        events: builtins.list[str] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
        rotate_secret: bool = False,
    ) -> Alert:
        """Change what is given; ``rotate_secret`` makes a new signing secret (the old one stops at once)."""
        values: dict[str, Any] = {}
        if url is not None:
            values["url"] = check_url(url)
        if events is not None:
            values["events"] = check_events(events)
        if description is not None:
            values["description"] = _description(description) or None
        if enabled is not None:
            values["enabled"] = bool(enabled)
        if rotate_secret:
            values["secret"] = new_secret()
        self.get(env, alert_id)
        updated = self.store.alerts.update(alert_id, env.id, values, self.core.clock())
        if updated is None:
            raise _not_found(alert_id)
        return updated

    def delete(self, env: Environment, alert_id: str) -> None:
        if not self.store.alerts.delete(alert_id, env.id):
            raise _not_found(alert_id)

    # -- deliveries ----------------------------------------------------------------------------
    def test(self, env: Environment, alert_id: str) -> Delivery:
        """Send an ``alert.test`` event to the webhook now (also while it is disabled)."""
        delivery = self.store.alerts.enqueue(self.get(env, alert_id), ALERT_TEST, self.core.clock())
        self.asked()
        return delivery

    def deliveries(
        self,
        env: Environment,
        alert_id: str,
        limit: int = 50,
        cursor: str | None = None,
        status: str | None = None,
    ) -> tuple[builtins.list[Delivery], str | None]:
        """The webhook's deliveries, newest first (``status``: PENDING, DELIVERED or FAILED)."""
        _check_limit(limit)
        if status is not None and status not in DELIVERY_STATUSES:
            raise ValidationError(
                f"status: expected one of {list(DELIVERY_STATUSES)}, not {status!r}", details={"field": "status"}
            )
        self.get(env, alert_id)
        return self.store.alerts.deliveries(alert_id, env.id, limit, cursor, status)

    def delivery(self, env: Environment, alert_id: str, delivery_id: str) -> Delivery:
        delivery = self.store.alerts.get_delivery(delivery_id, env.id)
        if delivery is None or delivery.alert_id != alert_id:
            raise NotFoundError(
                f"no delivery {delivery_id!r} of alert {alert_id!r} in this environment",
                details={"delivery": delivery_id},
            )
        return delivery

    def redeliver(self, env: Environment, alert_id: str, delivery_id: str) -> Delivery:
        """Send a delivery again now, with the body it was sent with, and a fresh set of tries."""
        self.delivery(env, alert_id, delivery_id)
        again = self.store.alerts.redeliver(delivery_id, env.id, self.core.clock())
        assert again is not None
        self.asked()
        return again

    # -- sending (the server's deliverer) ------------------------------------------------------
    def take_due(self, limit: int) -> builtins.list[tuple[Delivery, Alert]]:
        """Deliveries due now, leased to this server, with their webhooks. Deliveries of a webhook
        disabled since are recorded as not sent (except tests, sent anyway)."""
        taken = self.store.alerts.take_due(self.core.clock(), LEASE, limit)
        send = []
        for delivery, alert in taken:
            if alert.enabled or delivery.event == ALERT_TEST:
                send.append((delivery, alert))
            else:
                skipped = Try(self.core.clock(), None, "not sent: the alert was disabled", 0.0)
                self.store.alerts.record(delivery, delivery.body or "", skipped, next_try_at=None)
        return send

    def record(self, delivery: Delivery, body: str, tried: Try) -> bool:
        """Keep how a try went; due again after the next retry delay, or failed once tries run out."""
        delay = None if tried.ok else retry_delay(delivery.tries + 1)
        next_try_at = None if delay is None else tried.at + delay
        return self.store.alerts.record(delivery, body, tried, next_try_at)

    def next_due_at(self) -> float | None:
        return self.store.alerts.next_due_at()


def _description(value: str | None) -> str | None:
    return None if value is None else check_text(value, "description", MAX_NAME_LENGTH, required=False)


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit: expected 1 to {MAX_PAGE}", details={"field": "limit"})


def _not_found(alert_id: str) -> NotFoundError:
    return NotFoundError(f"no alert {alert_id!r} in this environment", details={"alert": alert_id})
