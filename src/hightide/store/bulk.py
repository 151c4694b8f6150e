"""``store.bulk``: bulk actions (cancel or replay many runs in the background) and their progress.

A server works on an action only while it holds its lease (``take``), a page of runs at a time,
recording each page's results and where the next one starts (``advance``) in one update."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import insert, or_, select, update

from hightide.store import schema as t
from hightide.store.pages import newest_first
from hightide.store.records import BulkAction, dumps
from hightide.store.seam import Seam

RUNNING, COMPLETED, ABORTED = "RUNNING", "COMPLETED", "ABORTED"
MAX_FAILURES_KEPT = 20


class BulkOps:
    def __init__(self, seam: Seam) -> None:
        self._seam = seam

    def create(self, action: BulkAction) -> BulkAction:
        row = {
            "id": action.id,
            "environment_id": action.environment_id,
            "action": action.action,
            "selection": dumps(action.selection),
            "status": action.status,
            "total": action.total,
            "processed": 0,
            "succeeded": 0,
            "skipped": 0,
            "failed": 0,
            "failures": "[]",
            "cursor": None,
            "lease_until": None,
            "created_at": action.created_at,
            "updated_at": action.created_at,
            "finished_at": None,
        }
        with self._seam.write() as conn:
            conn.execute(insert(t.bulk_actions).values(**row))
        return action

    def get(self, bulk_id: str, environment_id: str | None = None) -> BulkAction | None:
        b = t.bulk_actions
        stmt = select(b).where(b.c.id == bulk_id)
        if environment_id is not None:
            stmt = stmt.where(b.c.environment_id == environment_id)
        with self._seam.read() as conn:
            row = conn.execute(stmt).first()
        return BulkAction.from_row(row) if row else None

    def list_actions(
        self, environment_id: str, limit: int, cursor: str | None = None
    ) -> tuple[list[BulkAction], str | None]:
        """The environment's bulk actions, newest first."""
        b = t.bulk_actions
        with self._seam.read() as conn:
            stmt = select(b).where(b.c.environment_id == environment_id)
            return newest_first(conn, stmt, b, BulkAction.from_row, limit, cursor)

    def running(self, limit: int = 20) -> list[BulkAction]:
        """Unfinished actions of every environment, oldest first."""
        b = t.bulk_actions
        stmt = select(b).where(b.c.status == RUNNING).order_by(b.c.created_at, b.c.id).limit(limit)
        with self._seam.read() as conn:
            return [BulkAction.from_row(row) for row in conn.execute(stmt)]

    def take(self, bulk_id: str, now: float, lease: float) -> BulkAction | None:
        """The action, leased to the caller until ``now + lease``; ``None`` if it finished or another
        server holds it."""
        b = t.bulk_actions
        with self._seam.write() as conn:
            taken = conn.execute(
                update(b)
                .where(b.c.id == bulk_id, b.c.status == RUNNING, or_(b.c.lease_until.is_(None), b.c.lease_until < now))
                .values(lease_until=now + lease)
            ).rowcount
            row = conn.execute(select(b).where(b.c.id == bulk_id)).first() if taken else None
        return BulkAction.from_row(row) if row else None

    def advance(
        self,
        action: BulkAction,
        *,
        cursor: str | None,
        succeeded: int,
        skipped: int,
        failures: Sequence[tuple[str, str]],
        done: bool,
        now: float,
    ) -> BulkAction:
        """Record a page's results, where the next page starts, and release the lease (``done``: the
        last page). ``action`` is the state read when the lease was taken."""
        b = t.bulk_actions
        kept = [list(f) for f in [*action.failures, *failures]][:MAX_FAILURES_KEPT]
        values = {
            "cursor": cursor,
            "processed": action.processed + succeeded + skipped + len(failures),
            "succeeded": action.succeeded + succeeded,
            "skipped": action.skipped + skipped,
            "failed": action.failed + len(failures),
            "failures": dumps(kept),
            "lease_until": None,
            "updated_at": now,
        }
        with self._seam.write() as conn:
            conn.execute(update(b).where(b.c.id == action.id).values(**values))
            if done:  # unless it was aborted meanwhile (its status stays ABORTED, its counts are kept)
                finish = {"status": COMPLETED, "finished_at": now}
                conn.execute(update(b).where(b.c.id == action.id, b.c.status == RUNNING).values(**finish))
            row = conn.execute(select(b).where(b.c.id == action.id)).one()
        return BulkAction.from_row(row)

    def abort(self, bulk_id: str, environment_id: str, now: float) -> BulkAction | None:
        """Stop a running action after the page it is on; ``None`` if there is no such action."""
        b = t.bulk_actions
        with self._seam.write() as conn:
            conn.execute(
                update(b)
                .where(b.c.id == bulk_id, b.c.environment_id == environment_id, b.c.status == RUNNING)
                .values(status=ABORTED, finished_at=now, updated_at=now)
            )
            row = conn.execute(select(b).where(b.c.id == bulk_id, b.c.environment_id == environment_id)).first()
        return BulkAction.from_row(row) if row else None
