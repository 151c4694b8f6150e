"""``store.hooks``: the final hooks owed to runs that ended ``CRASHED`` or ``TIMED_OUT``.

The change that makes such a run final sets ``runs.hooks_owed_until`` (``engine/base.py``): now
when its worker is gone (a lapsed lease), a minute on when the worker that reported it runs them
itself. A worker takes what is due (``take``: leased for a minute, with ``SKIP LOCKED`` on
PostgreSQL so that two workers never take the same), and says when they ran (``done``)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import or_, select, update

from hightide.store import schema as t
from hightide.store.records import Run
from hightide.store.seam import Seam


class HookOps:
    def __init__(self, seam: Seam) -> None:
        self._seam = seam

    def take(
        self, environment_id: str, versions: Sequence[str] | None, now: float, lease: float, limit: int
    ) -> list[Run]:
        """Up to ``limit`` runs of the environment owing final hooks now, of one of ``versions``
        (None: any), leased until ``now + lease``."""
        r = t.runs
        stmt = select(r.c.id).where(r.c.environment_id == environment_id, r.c.hooks_owed_until <= now)
        if versions is not None:
            stmt = stmt.where(or_(r.c.version.in_(list(versions)), r.c.version.is_(None)))
        stmt = stmt.order_by(r.c.hooks_owed_until).limit(limit)
        with self._seam.read() as conn:  # a read first: every worker asks every few seconds, mostly for nothing
            if conn.execute(stmt).first() is None:
                return []
        with self._seam.write() as conn:
            ids = list(conn.execute(self._seam.claim_select(stmt)).scalars())
            if not ids:
                return []
            conn.execute(update(r).where(r.c.id.in_(ids)).values(hooks_owed_until=now + lease))
            return [Run.from_row(row) for row in conn.execute(select(r).where(r.c.id.in_(ids)).order_by(r.c.id))]

    def done(self, environment_id: str, run_ids: Sequence[str]) -> list[str]:
        """Forget the final hooks of ``run_ids``: they ran. Returns those that were owed."""
        r = t.runs
        if not run_ids:
            return []
        with self._seam.write() as conn:
            owed = select(r.c.id).where(
                r.c.environment_id == environment_id, r.c.id.in_(list(run_ids)), r.c.hooks_owed_until.isnot(None)
            )
            found = list(conn.execute(owed).scalars())
            if found:
                conn.execute(update(r).where(r.c.id.in_(found)).values(hooks_owed_until=None))
            return found
