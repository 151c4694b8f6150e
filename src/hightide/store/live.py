"""``store.live``: the reads of live views (realtime streams, live pages).

A live view shows a run as ``GET /api/v1/runs/{id}`` does: the run, its attempts and, while it is
WAITING, what it waits for. ``views`` reads that for many runs in one read transaction with a fixed
number of statements (the runs, their attempts, the open waits of those WAITING), whatever the
number of runs or of those who watch them: the realtime hub calls it once per batch of changes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, or_, select

from hightide.core.states import RunStatus
from hightide.store import schema as t
from hightide.store.records import Attempt, Run, Waitpoint
from hightide.store.seam import Seam

_CHUNK = 500  # ids per IN list: well under SQLite's bound on parameters


@dataclass(frozen=True)
class RunView:
    """A run as a live view shows it: with its attempts and, while WAITING, its open waitpoints."""

    run: Run
    attempts: tuple[Attempt, ...] = ()
    waits: tuple[Waitpoint, ...] = ()


@dataclass(frozen=True)
class TagQuery:
    """The runs of ``environment_id`` carrying any of ``tags``: only among the runs ``among`` (the
    runs a batch changed) if given, else those changed since ``updated_since`` (at most ``limit``,
    the most recently changed)."""

    environment_id: str
    tags: frozenset[str]
    among: frozenset[str] | None = None
    updated_since: float | None = None
    limit: int = 1000


@dataclass(frozen=True)
class CreatedQuery:
    """The runs of ``environment_id`` created since ``created_since`` (at most ``limit``, the
    newest): what an environment-wide subscriber re-reads after a batch too large to list. It reads
    the ``(environment_id, created_at)`` index of the Runs list, whatever the number of runs."""

    environment_id: str
    created_since: float
    limit: int = 1000


def _chunks(values: Iterable[str]) -> Iterable[list[str]]:
    items = sorted(set(values))
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _tagged(environment_id: str, tags: Collection[str]) -> Any:
    rt = t.run_tags
    return select(rt.c.run_id).where(rt.c.environment_id == environment_id, rt.c.tag.in_(sorted(tags)))


class LiveOps:
    def __init__(self, seam: Seam) -> None:
        self._seam = seam

    def views(
        self,
        run_ids: Collection[str],
        tagged: Sequence[TagQuery] = (),
        known: Mapping[str, float] | None = None,
        created: Sequence[CreatedQuery] = (),
    ) -> dict[str, RunView]:
        """The views of the runs ``run_ids`` (of any environment; unknown ids are left out) and of
        the runs each of ``tagged`` and ``created`` selects, in one read transaction. ``known``: the ``updated_at``
        of runs read before; those of ``run_ids`` that have not changed since are left out (a
        light statement first, so that re-reading many unchanged runs costs little)."""
        r = t.runs
        runs: dict[str, Run] = {}
        among = [q for q in tagged if q.among is not None]
        with self._seam.snapshot() as conn:  # a run and its waits as they were together
            if known:
                checked = [i for i in run_ids if i in known]
                same = set()
                for chunk in _chunks(checked):
                    rows = conn.execute(select(r.c.id, r.c.updated_at).where(r.c.id.in_(chunk)))
                    same |= {row.id for row in rows if row.updated_at == known[row.id]}
                run_ids = [i for i in run_ids if i not in same]
            if len(run_ids) + sum(len(q.among or ()) for q in among) <= _CHUNK:
                # The usual batch: one statement for the runs named and the tagged runs it changed.
                conds = [r.c.id.in_(sorted(run_ids))] if run_ids else []
                conds += [self._among(q, q.among or ()) for q in among]
                if conds:
                    runs.update(self._runs(conn, or_(*conds)))
            else:
                for chunk in _chunks(run_ids):
                    runs.update(self._runs(conn, r.c.id.in_(chunk)))
                for q in among:
                    for chunk in _chunks(q.among or ()):
                        runs.update(self._runs(conn, self._among(q, chunk)))
            for q in tagged:
                if q.among is None:
                    runs.update(self._changed_since(conn, q))
            for c in created:
                stmt = (
                    select(r)
                    .where(r.c.environment_id == c.environment_id, r.c.created_at >= c.created_since)
                    .order_by(r.c.created_at.desc())
                    .limit(c.limit)
                )
                runs.update({row._mapping["id"]: Run.from_row(row) for row in conn.execute(stmt)})
            return self._with_details(conn, runs)

    def recent_tagged(self, environment_id: str, tag: str, limit: int) -> list[RunView]:
        """The ``limit`` newest runs of ``environment_id`` tagged ``tag``, oldest of them first."""
        r = t.runs
        stmt = (
            select(r)
            .where(r.c.environment_id == environment_id, r.c.id.in_(_tagged(environment_id, [tag])))
            .order_by(r.c.created_at.desc(), r.c.id.desc())
            .limit(limit)
        )
        with self._seam.read() as conn:
            runs = {row._mapping["id"]: Run.from_row(row) for row in conn.execute(stmt)}
            views = self._with_details(conn, runs)
        return sorted(views.values(), key=lambda v: (v.run.created_at, v.run.id))

    @staticmethod
    def _among(q: TagQuery, run_ids: Collection[str]) -> Any:
        r = t.runs
        return and_(
            r.c.environment_id == q.environment_id,
            r.c.id.in_(sorted(run_ids)),
            r.c.id.in_(_tagged(q.environment_id, q.tags)),
        )

    @staticmethod
    def _runs(conn: Connection, where: Any) -> dict[str, Run]:
        return {row._mapping["id"]: Run.from_row(row) for row in conn.execute(select(t.runs).where(where))}

    @staticmethod
    def _changed_since(conn: Connection, q: TagQuery) -> dict[str, Run]:
        r = t.runs
        cond = [r.c.environment_id == q.environment_id, r.c.id.in_(_tagged(q.environment_id, q.tags))]
        if q.updated_since is not None:
            cond.append(r.c.updated_at >= q.updated_since)
        stmt = select(r).where(*cond).order_by(r.c.updated_at.desc()).limit(q.limit)
        return {row._mapping["id"]: Run.from_row(row) for row in conn.execute(stmt)}

    @staticmethod
    def _with_details(conn: Connection, runs: dict[str, Run]) -> dict[str, RunView]:
        attempts: dict[str, list[Attempt]] = defaultdict(list)
        waits: dict[str, list[Waitpoint]] = defaultdict(list)
        a = t.attempts
        for chunk in _chunks(runs):
            for row in conn.execute(select(a).where(a.c.run_id.in_(chunk)).order_by(a.c.run_id, a.c.number)):
                attempt = Attempt.from_row(row)
                attempts[attempt.run_id].append(attempt)
        waiting = [run_id for run_id, run in runs.items() if run.status is RunStatus.WAITING]
        w, rw = t.waitpoints, t.run_waitpoints
        for chunk in _chunks(waiting):
            stmt = (
                select(w, rw.c.run_id.label("waiting_run_id"))
                .join(rw, rw.c.waitpoint_id == w.c.id)
                .where(rw.c.run_id.in_(chunk), w.c.status == "WAITING")
                .order_by(w.c.created_at, w.c.id)
            )
            for row in conn.execute(stmt):
                waits[row._mapping["waiting_run_id"]].append(Waitpoint.from_row(row))
        return {
            run_id: RunView(run, tuple(attempts.get(run_id, ())), tuple(waits.get(run_id, ())))
            for run_id, run in runs.items()
        }


__all__ = ["CreatedQuery", "LiveOps", "RunView", "TagQuery"]
