"""The deliveries an event makes, inserted in the transaction that made it: ``failed_runs`` is called
by ``store.runs`` when runs fail for good (``store.alerts`` holds the rest of the webhooks' operations)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert, select

from hightide.core.alerts import RUN_FAILED
from hightide.core.ids import new_id
from hightide.store import schema as t

PENDING, DELIVERED, FAILED = "PENDING", "DELIVERED", "FAILED"
DELIVERY_STATUSES = (PENDING, DELIVERED, FAILED)


def delivery_row(alert: Any, event: str, event_id: str, run_id: str | None, now: float) -> dict[str, Any]:
    return {
        "id": new_id("adl", now),
        "alert_id": alert.id,
        "environment_id": alert.environment_id,
        "event_id": event_id,
        "event": event,
        "run_id": run_id,
        "status": PENDING,
        "tries": 0,
        "next_try_at": now,
        "lease_until": None,
        "lease_owner": None,
        "body": None,
        "log": "[]",
        "created_at": now,
        "updated_at": now,
        "delivered_at": None,
    }


def failed_runs(conn: Connection, run_ids: Sequence[str], now: float) -> int:
    """In the transaction that failed ``run_ids`` for good: a ``run.failed`` delivery to each
    enabled webhook of their environments that subscribes to it. One read when no webhook does."""
    if not run_ids:
        return 0
    a, r = t.alerts, t.runs
    rows = conn.execute(
        select(r.c.id.label("run_id"), a.c.id, a.c.environment_id, a.c.events)
        .join(a, a.c.environment_id == r.c.environment_id)
        .where(r.c.id.in_(sorted(set(run_ids))), a.c.enabled.is_(True))
    ).all()
    events: dict[str, str] = {}
    deliveries = []
    for row in rows:
        if RUN_FAILED in json.loads(row.events):
            event_id = events.setdefault(row.run_id, new_id("evt", now))
            deliveries.append(delivery_row(row, RUN_FAILED, event_id, row.run_id, now))
    if deliveries:
        conn.execute(insert(t.alert_deliveries), deliveries)
    return len(deliveries)
