"""``store.metadata``: operations on runs' metadata, and tags added to runs, applied under the row lock.

Each call is one write transaction that locks the runs it changes (in id order; SQLite's write lock
serialises the whole transaction), reads their metadata, applies the operations (``core/metadata``)
and writes the result: a read-modify-write that no concurrent call can interleave with, so that a
hundred children incrementing their parent's counter at once leave it at exactly a hundred.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from hightide.core.limits import MAX_METADATA_BYTES
from hightide.core.metadata import (
    MetadataOperation,
    Target,
    apply_operations,
    check_metadata_size,
    check_tag_count,
    check_updatable,
)
from hightide.core.states import RunStatus
from hightide.errors import NotFoundError
from hightide.store import schema as t
from hightide.store.changes import Change, ChangeKind
from hightide.store.records import dumps, loads
from hightide.store.seam import Seam, retried


@dataclass(frozen=True)
class MetadataChange:
    """Operations on the metadata of ``run_id``, which is the ``target`` of the run that sent them."""

    run_id: str
    operations: tuple[MetadataOperation, ...]
    target: Target = Target.RUN


class MetadataOps:
    def __init__(self, seam: Seam) -> None:
        self._seam = seam

    @retried
    def apply_operations(
        self, environment_id: str, changes: Sequence[MetadataChange], now: float
    ) -> dict[str, dict[str, Any]]:
        """Apply ``changes`` in order, all or none, and return the metadata of each run they name
        after them. Refused as a whole (nothing changes) when a run is missing (``NotFoundError``),
        finished more than an hour ago (``ConflictError``) or would be over 256 KB
        (``ValidationError``); each error's ``details.target`` says which of the changes it is."""
        r = t.runs
        ids = sorted({c.run_id for c in changes})
        if not ids:
            return {}
        with self._seam.write_notify() as conn:
            rows = {
                row.id: row
                for row in conn.execute(
                    select(r.c.id, r.c.status, r.c.finished_at, r.c.metadata)
                    .where(r.c.id.in_(ids), r.c.environment_id == environment_id)
                    .order_by(r.c.id)
                    .with_for_update()
                )
            }
            after: dict[str, dict[str, Any]] = {}
            target_of: dict[str, Target] = {}
            for change in changes:
                row = rows.get(change.run_id)
                if row is None:
                    raise NotFoundError(
                        f"run {change.run_id!r} (the {change.target.value} run) not found",
                        details={"run": change.run_id, "target": change.target.value},
                    )
                check_updatable(row.id, row.status, row.finished_at, now, change.target)
                if change.run_id not in after:
                    after[change.run_id] = loads(row.metadata) or {}
                    target_of[change.run_id] = change.target
                after[change.run_id] = apply_operations(after[change.run_id], change.operations)
            # Compared as stored: in Python 1 == 1.0 == True, in JSON they are three values.
            texts = {run_id: dumps(after[run_id]) for run_id in ids}
            changed = [run_id for run_id in ids if texts[run_id] != rows[run_id].metadata]
            for run_id in changed:
                if len(texts[run_id].encode()) > MAX_METADATA_BYTES:
                    check_metadata_size(after[run_id], run_id, target_of[run_id])
            if changed:
                conn.execute(
                    update(r)
                    .where(r.c.id == bindparam("b_id"))
                    .values(metadata=bindparam("b_metadata"), updated_at=now),
                    [{"b_id": run_id, "b_metadata": texts[run_id]} for run_id in changed],
                )
                self._seam.publish(
                    conn,
                    *(Change(environment_id, i, RunStatus(rows[i].status), ChangeKind.METADATA) for i in changed),
                )
            return after

    @retried
    def add_tags(
        self, environment_id: str, run_id: str, tags: Sequence[str], max_tags: int, now: float
    ) -> list[str] | None:
        """Add ``tags`` to the run (those it has already are skipped); return all its tags, or
        ``None`` if there is no such run. Refused (nothing changes) past ``max_tags`` in all
        (``ValidationError``) or on a run finished more than an hour ago (``ConflictError``)."""
        r = t.runs
        with self._seam.write_notify() as conn:
            row = conn.execute(
                select(r.c.id, r.c.status, r.c.finished_at, r.c.tags)
                .where(r.c.id == run_id, r.c.environment_id == environment_id)
                .with_for_update()
            ).first()
            if row is None:
                return None
            check_updatable(run_id, row.status, row.finished_at, now)
            current: list[str] = loads(row.tags) or []
            new = [tag for tag in dict.fromkeys(tags) if tag not in current]
            if not new:
                return current
            check_tag_count(run_id, current, new, max_tags)
            every = [*current, *new]
            conn.execute(update(r).where(r.c.id == run_id).values(tags=dumps(every), updated_at=now))
            conn.execute(
                insert(t.run_tags), [{"run_id": run_id, "tag": tag, "environment_id": environment_id} for tag in new]
            )
            self._seam.publish(conn, Change(environment_id, run_id, RunStatus(row.status), ChangeKind.TAGS))
            return every
