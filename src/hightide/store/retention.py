"""``store.retention``: finding finished runs past the retention period and deleting them with
everything that is theirs (attempts, logs, spans, tags, journal, the waitpoints they made); and
alert deliveries past it that are done (delivered or failed).

Deletes go in small batches, each its own short transaction, so the engine's writes interleave."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select

from hightide.core.states import FINAL_STATUSES
from hightide.store import schema as t
from hightide.store.alert_events import PENDING
from hightide.store.seam import Seam
from hightide.store.wakeups import WAITING

_FINAL = sorted(s.value for s in FINAL_STATUSES)
# Rows of a run, by table, deleted before the run (their foreign keys also cascade).
_OWNED = (t.run_tags, t.attempts, t.run_logs, t.spans, t.run_waitpoints, t.run_journal)


class RetentionOps:
    def __init__(self, seam: Seam) -> None:
        self._seam = seam

    def expired_runs(self, cutoff: float, limit: int) -> list[str]:
        """Up to ``limit`` runs that finished before ``cutoff``, oldest created first. Read per
        environment and final status through the list index (created_at <= finished_at, so a run
        finished before the cutoff was created before it too): no index of its own to maintain."""
        r = t.runs
        found: list[str] = []
        with self._seam.read() as conn:
            envs = list(conn.execute(select(t.environments.c.id).order_by(t.environments.c.id)).scalars())
            for env_id in envs:
                for status in _FINAL:
                    if len(found) >= limit:
                        return found
                    stmt = (
                        select(r.c.id)
                        .where(
                            r.c.environment_id == env_id,
                            r.c.status == status,
                            r.c.created_at < cutoff,
                            r.c.finished_at < cutoff,
                        )
                        .order_by(r.c.created_at, r.c.id)
                        .limit(limit - len(found))
                    )
                    found += conn.execute(stmt).scalars()
        return found

    def delete_runs(self, run_ids: Sequence[str]) -> int:
        """Delete ``run_ids`` if they are still finished, with their rows and the resolved waitpoints
        they made (a token still waiting keeps its row: someone may complete it). Returns how many."""
        if not run_ids:
            return 0
        r, w = t.runs, t.waitpoints
        with self._seam.write() as conn:
            ids = list(conn.execute(select(r.c.id).where(r.c.id.in_(list(run_ids)), r.c.status.in_(_FINAL))).scalars())
            if not ids:
                return 0
            made = select(w.c.id).where(w.c.owner_run_id.in_(ids), w.c.status != WAITING)
            conn.execute(delete(t.run_waitpoints).where(t.run_waitpoints.c.waitpoint_id.in_(made)))
            conn.execute(delete(w).where(w.c.owner_run_id.in_(ids), w.c.status != WAITING))
            for table in _OWNED:
                conn.execute(delete(table).where(table.c.run_id.in_(ids)))
            return int(conn.execute(delete(r).where(r.c.id.in_(ids))).rowcount)

    def expired_deliveries(self, cutoff: float, limit: int) -> list[str]:
        """Up to ``limit`` alert deliveries made before ``cutoff`` and done, oldest first, read per
        webhook through its list index."""
        d = t.alert_deliveries
        found: list[str] = []
        with self._seam.read() as conn:
            for alert_id in conn.execute(select(t.alerts.c.id).order_by(t.alerts.c.id)).scalars():
                if len(found) >= limit:
                    break
                stmt = (
                    select(d.c.id)
                    .where(d.c.alert_id == alert_id, d.c.created_at < cutoff, d.c.status != PENDING)
                    .order_by(d.c.created_at, d.c.id)
                    .limit(limit - len(found))
                )
                found += conn.execute(stmt).scalars()
        return found

    def delete_deliveries(self, delivery_ids: Sequence[str]) -> int:
        """Delete ``delivery_ids`` unless one is pending again (a redelivery meanwhile)."""
        if not delivery_ids:
            return 0
        d = t.alert_deliveries
        with self._seam.write() as conn:
            done = delete(d).where(d.c.id.in_(list(delivery_ids)), d.c.status != PENDING)
            return int(conn.execute(done).rowcount)
