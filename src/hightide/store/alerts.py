"""``store.alerts``: webhooks (``alerts``) and the log of their deliveries (``alert_deliveries``).

A run's final failure inserts one delivery per enabled webhook of its environment that subscribes
to ``run.failed``, in the transaction that fails the run (``alert_events.failed_runs``, called by
``store.runs``):
an alert is never lost to a crash between the two. Servers then take due deliveries under a lease
(``take_due``, safe for several servers on one database) and record each try (``record``).
"""

from __future__ import annotations

import builtins
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, delete, func, insert, or_, select, update

from hightide.core.alerts import MAX_TRIES_KEPT, SECRET_PREFIX
from hightide.core.ids import new_id
from hightide.store import schema as t
from hightide.store.alert_events import DELIVERED, FAILED, PENDING, delivery_row
from hightide.store.pages import newest_first
from hightide.store.records import dumps, loads
from hightide.store.seam import Seam


@dataclass(frozen=True)
class Alert:
    """A webhook: ``events`` of the environment are POSTed to ``url``, signed with ``secret``."""

    id: str
    environment_id: str
    url: str
    events: list[str]
    secret: str
    description: str | None
    enabled: bool
    created_at: float
    updated_at: float

    @classmethod
    def from_row(cls, row: Any) -> Alert:
        m = row._mapping
        return cls(
            id=m["id"],
            environment_id=m["environment_id"],
            url=m["url"],
            events=loads(m["events"]),
            secret=m["secret"],
            description=m["description"],
            enabled=bool(m["enabled"]),
            created_at=m["created_at"],
            updated_at=m["updated_at"],
        )


@dataclass(frozen=True)
class Delivery:
    """One event sent to one webhook: ``PENDING`` until the receiver answers 2xx (``DELIVERED``) or
    the tries run out (``FAILED``). ``log`` holds its last tries, oldest first."""

    id: str
    alert_id: str
    environment_id: str
    event_id: str
    event: str
    run_id: str | None
    status: str
    tries: int
    next_try_at: float | None
    body: str | None
    log: list[dict[str, Any]] = field(default_factory=list)
    created_at: float = 0.0
    updated_at: float = 0.0
    delivered_at: float | None = None
    lease_owner: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> Delivery:
        m = row._mapping
        return cls(
            id=m["id"],
            alert_id=m["alert_id"],
            environment_id=m["environment_id"],
            event_id=m["event_id"],
            event=m["event"],
            run_id=m["run_id"],
            status=m["status"],
            tries=m["tries"],
            next_try_at=m["next_try_at"],
            body=m["body"],
            log=loads(m["log"]),
            created_at=m["created_at"],
            updated_at=m["updated_at"],
            delivered_at=m["delivered_at"],
            lease_owner=m["lease_owner"],
        )


@dataclass(frozen=True)
class Try:
    """How one try of a delivery went: the receiver's status code (None: no answer) or the error."""

    at: float
    status_code: int | None
    error: str | None
    duration_ms: float

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "status_code": self.status_code, "error": self.error, "duration_ms": self.duration_ms}


def new_secret() -> str:
    return f"{SECRET_PREFIX}_{secrets.token_hex(24)}"


class AlertOps:
    def __init__(self, seam: Seam) -> None:
        self._seam = seam

    # -- webhooks ------------------------------------------------------------------------------
    def create(self, alert: Alert) -> Alert:
        row = {**alert.__dict__, "events": dumps(alert.events)}
        with self._seam.write() as conn:
            conn.execute(insert(t.alerts).values(**row))
        return alert

    def get(self, alert_id: str, environment_id: str) -> Alert | None:
        a = t.alerts
        with self._seam.read() as conn:
            row = conn.execute(select(a).where(a.c.id == alert_id, a.c.environment_id == environment_id)).first()
        return Alert.from_row(row) if row else None

    def list(
        self, environment_id: str, limit: int, cursor: str | None = None
    ) -> tuple[builtins.list[Alert], str | None]:
        """The environment's webhooks, newest first."""
        a = t.alerts
        with self._seam.read() as conn:
            return newest_first(
                conn, select(a).where(a.c.environment_id == environment_id), a, Alert.from_row, limit, cursor
            )

    def update(self, alert_id: str, environment_id: str, values: dict[str, Any], now: float) -> Alert | None:
        """Change what ``values`` names (``url``, ``events``, ``description``, ``enabled``, ``secret``)."""
        a = t.alerts
        stored = {k: dumps(v) if k == "events" else v for k, v in values.items()}
        with self._seam.write() as conn:
            conn.execute(
                update(a)
                .where(a.c.id == alert_id, a.c.environment_id == environment_id)
                .values(**stored, updated_at=now)
            )
            row = conn.execute(select(a).where(a.c.id == alert_id, a.c.environment_id == environment_id)).first()
        return Alert.from_row(row) if row else None

    def delete(self, alert_id: str, environment_id: str) -> bool:
        """Delete a webhook with its delivery log (deliveries not yet made are dropped)."""
        a, d = t.alerts, t.alert_deliveries
        with self._seam.write() as conn:
            found = conn.execute(select(a.c.id).where(a.c.id == alert_id, a.c.environment_id == environment_id)).first()
            if found is None:
                return False
            conn.execute(delete(d).where(d.c.alert_id == alert_id))
            conn.execute(delete(a).where(a.c.id == alert_id))
        return True

    # -- deliveries ----------------------------------------------------------------------------
    def enqueue(self, alert: Alert, event: str, now: float) -> Delivery:
        """A delivery of ``event`` (one not tied to a run, e.g. ``alert.test``) to ``alert``, due now."""
        row = delivery_row(alert, event, new_id("evt", now), None, now)
        with self._seam.write() as conn:
            conn.execute(insert(t.alert_deliveries).values(**row))
            stored = conn.execute(select(t.alert_deliveries).where(t.alert_deliveries.c.id == row["id"])).one()
        return Delivery.from_row(stored)

    def deliveries(
        self, alert_id: str, environment_id: str, limit: int, cursor: str | None = None, status: str | None = None
    ) -> tuple[builtins.list[Delivery], str | None]:
        """A webhook's deliveries, newest first."""
        d = t.alert_deliveries
        stmt = select(d).where(d.c.alert_id == alert_id, d.c.environment_id == environment_id)
        if status is not None:
            stmt = stmt.where(d.c.status == status)
        with self._seam.read() as conn:
            return newest_first(conn, stmt, d, Delivery.from_row, limit, cursor)

    def get_delivery(self, delivery_id: str, environment_id: str) -> Delivery | None:
        d = t.alert_deliveries
        with self._seam.read() as conn:
            row = conn.execute(select(d).where(d.c.id == delivery_id, d.c.environment_id == environment_id)).first()
        return Delivery.from_row(row) if row else None

    def redeliver(self, delivery_id: str, environment_id: str, now: float) -> Delivery | None:
        """Send a delivery again now (the same body, a fresh set of tries), whatever its status."""
        d = t.alert_deliveries
        with self._seam.write() as conn:
            conn.execute(
                update(d)
                .where(d.c.id == delivery_id, d.c.environment_id == environment_id)
                .values(status=PENDING, tries=0, next_try_at=now, lease_until=None, lease_owner=None, updated_at=now)
            )
            row = conn.execute(select(d).where(d.c.id == delivery_id, d.c.environment_id == environment_id)).first()
        return Delivery.from_row(row) if row else None

    def take_due(self, now: float, lease: float, limit: int) -> builtins.list[tuple[Delivery, Alert]]:
        """Due deliveries with their webhooks, leased to the caller until ``now + lease`` (another
        server taking the same ones gets none of them), oldest first."""
        d, a = t.alert_deliveries, t.alerts
        owner = new_id("lease", now)
        free = or_(d.c.lease_until.is_(None), d.c.lease_until < now)
        due = select(d.c.id).where(d.c.status == PENDING, d.c.next_try_at <= now, free)
        with self._seam.read() as conn:  # a read first: every server asks every second, mostly for nothing
            ids = [row.id for row in conn.execute(due.order_by(d.c.next_try_at, d.c.id).limit(limit))]
        if not ids:
            return []
        with self._seam.write() as conn:
            conn.execute(
                update(d)
                .where(d.c.id.in_(ids), d.c.status == PENDING, free)
                .values(lease_until=now + lease, lease_owner=owner)
            )
            taken = [
                Delivery.from_row(row)
                for row in conn.execute(
                    select(d).where(d.c.lease_owner == owner, d.c.id.in_(ids)).order_by(d.c.next_try_at, d.c.id)
                )
            ]
            alert_ids = sorted({delivery.alert_id for delivery in taken})
            alerts = {row.id: Alert.from_row(row) for row in conn.execute(select(a).where(a.c.id.in_(alert_ids)))}
        return [(delivery, alerts[delivery.alert_id]) for delivery in taken]

    def record(self, delivery: Delivery, body: str, tried: Try, next_try_at: float | None) -> bool:
        """Record a try of a delivery taken with ``take_due``: delivered, due again at
        ``next_try_at``, or failed for good (``None``). False if the lease was lost meanwhile."""
        d = t.alert_deliveries
        status = DELIVERED if tried.ok else (PENDING if next_try_at is not None else FAILED)
        log = [*delivery.log, tried.to_dict()][-MAX_TRIES_KEPT:]
        values = {
            "status": status,
            "tries": delivery.tries + 1,
            "next_try_at": next_try_at if status == PENDING else None,
            "lease_until": None,
            "lease_owner": None,
            "body": body,
            "log": dumps(log),
            "updated_at": tried.at,
            "delivered_at": tried.at if tried.ok else None,
        }
        with self._seam.write() as conn:
            done = conn.execute(
                update(d).where(d.c.id == delivery.id, d.c.lease_owner == delivery.lease_owner).values(**values)
            ).rowcount
        return bool(done)

    def next_due_at(self) -> float | None:
        """When a pending delivery can next be taken: its next try, or when the lease of the server
        sending it ends (None: nothing is pending)."""
        d = t.alert_deliveries
        free_at = case((d.c.lease_until > d.c.next_try_at, d.c.lease_until), else_=d.c.next_try_at)
        with self._seam.read() as conn:
            return conn.execute(select(func.min(free_at)).where(d.c.status == PENDING)).scalar()
