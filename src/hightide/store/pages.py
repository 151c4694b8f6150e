"""``store.pages``: listing runs and the other dated rows (waitpoints, schedules, alerts) a page at a
time, newest first, with opaque cursors; and the ``RunFilter`` of run lists as a WHERE clause."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, and_, or_, select

from hightide.errors import ValidationError
from hightide.store import schema as t
from hightide.store.records import RunFilter


class _Dated(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def created_at(self) -> float: ...


Item = TypeVar("Item", bound=_Dated)


def filtered(stmt: Any, environment_id: str, flt: RunFilter) -> Any:
    """``stmt`` (a select from ``runs``) narrowed to the environment's runs that ``flt`` selects."""
    r = t.runs
    stmt = stmt.where(r.c.environment_id == environment_id)
    if flt.statuses:
        stmt = stmt.where(r.c.status.in_(flt.statuses))
    if flt.task_ids:
        stmt = stmt.where(r.c.task_id.in_(flt.task_ids))
    if flt.tag:
        tags = t.run_tags
        stmt = stmt.where(
            r.c.id.in_(select(tags.c.run_id).where(tags.c.environment_id == environment_id, tags.c.tag == flt.tag))
        )
    if flt.created_from is not None:
        stmt = stmt.where(r.c.created_at >= flt.created_from)
    if flt.created_to is not None:
        stmt = stmt.where(r.c.created_at < flt.created_to)
    if flt.parent_run_id is not None:
        stmt = stmt.where(r.c.parent_run_id == flt.parent_run_id)
    if flt.version is not None:
        stmt = stmt.where(r.c.version == flt.version)
    return stmt


def newest_first(
    conn: Connection, stmt: Any, table: Any, make: Callable[[Any], Item], limit: int, cursor: str | None
) -> tuple[list[Item], str | None]:
    """A page of ``stmt``'s rows, newest first (by ``created_at``, then ``id``), and the cursor
    of the next page (``None`` at the end). For runs and waitpoints alike."""
    if cursor:
        created, item_id = decode_cursor(cursor)
        # ``created_at <= created`` is implied by the OR, but only this form bounds an index range:
        # without it a page deep in a long list reads every newer row (bench/dashboard_pages.py).
        stmt = stmt.where(
            table.c.created_at <= created,
            or_(table.c.created_at < created, and_(table.c.created_at == created, table.c.id < item_id)),
        )
    stmt = stmt.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit + 1)
    rows = [make(row) for row in conn.execute(stmt)]
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        return rows, encode_cursor(last.created_at, last.id)
    return rows, None


def encode_cursor(created_at: float, run_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at, run_id]).encode()).decode()


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        created, run_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return float(created), str(run_id)
    except (ValueError, TypeError) as exc:
        raise ValidationError("cursor: not a cursor returned by this API", details={"field": "cursor"}) from exc
