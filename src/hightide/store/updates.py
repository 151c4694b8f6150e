"""``store.updates``: the one conditional UPDATE every change of a run goes through, alone
(``conditional_update``) or for a batch of distinct runs in a few statements
(``conditional_updates``). Functions on a connection, so the runs, releases and claims groups
apply changes inside their own transactions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, bindparam, select, update

from hightide.errors import ServerError
from hightide.store import schema as t
from hightide.store.records import RunChange, dumps


def conditional_update(conn: Connection, change: RunChange, now: float, environment_id: str | None = None) -> bool:
    """The one conditional UPDATE every change of a run goes through."""
    r = t.runs
    where = and_(r.c.id == change.run_id, r.c.status == change.expect_status)
    if environment_id is not None:
        where = and_(where, r.c.environment_id == environment_id)
    if change.expect_attempt is not None:
        where = and_(where, r.c.attempt_count == change.expect_attempt)
    if change.expect_execution is not None:
        where = and_(where, r.c.executions == change.expect_execution)
    if change.expect_worker is not None:
        where = and_(where, r.c.worker_id == change.expect_worker)
    if change.lease_lapsed_by is not None:  # a heartbeat that just extended the lease wins
        where = and_(where, r.c.lease_expires_at <= change.lease_lapsed_by)
    if change.delay_ended_by is not None:  # a reschedule that just moved the delay wins
        where = and_(where, r.c.available_at <= change.delay_ended_by)
    if change.ttl_ended_by is not None:  # a claim that just started the run wins
        where = and_(where, r.c.ttl_expires_at <= change.ttl_ended_by, r.c.started_at.is_(None))
    encoded: dict[str, Any] = {
        k: (dumps(v) if k in _JSON_COLUMNS and v is not None else v) for k, v in change.values.items()
    }
    encoded["updated_at"] = now
    if "available_at" in encoded or "priority" in encoded:
        # Keep the claim order: a run is ranked `priority` seconds ahead of when it is available.
        # A SET expression reads the old row, so a new value must be used as given.
        encoded["rank_at"] = encoded.get("available_at", r.c.available_at) - encoded.get("priority", r.c.priority)
    if conn.execute(update(r).where(where).values(**encoded)).rowcount != 1:
        return False
    if change.attempt_values and change.expect_attempt:
        av = {k: (dumps(v) if k == "error" and v is not None else v) for k, v in change.attempt_values.items()}
        conn.execute(
            update(t.attempts)
            .where(t.attempts.c.run_id == change.run_id, t.attempts.c.number == change.expect_attempt)
            .values(**av)
        )
    return True


def conditional_updates(conn: Connection, changes: Sequence[RunChange], now: float, environment_id: str) -> list[bool]:
    """``conditional_update`` for changes of distinct runs, in a few statements: lock the runs
    (in id order), check each change's conditions on them, then apply the changes that hold with
    one executemany UPDATE per shape of change (and one for their attempts)."""
    r, a = t.runs, t.attempts
    rows = {
        row.id: row
        for row in conn.execute(
            select(
                r.c.id,
                r.c.environment_id,
                r.c.status,
                r.c.attempt_count,
                r.c.executions,
                r.c.worker_id,
                r.c.lease_expires_at,
                r.c.available_at,
                r.c.ttl_expires_at,
                r.c.started_at,
            )
            .where(r.c.id.in_(sorted(c.run_id for c in changes)))
            .order_by(r.c.id)
            .with_for_update()
        )
    }
    applied = [_change_holds(rows.get(c.run_id), c, environment_id) for c in changes]
    shapes: dict[tuple[Any, ...], list[RunChange]] = {}
    for change, ok in zip(changes, applied, strict=True):
        if not ok:
            continue
        if "available_at" in change.values or "priority" in change.values or change.timed:  # rank_at: see above
            if not conditional_update(conn, change, now, environment_id):
                raise ServerError(f"run {change.run_id} changed under its lock; rolled back")
            continue
        with_attempt = tuple(sorted(change.attempt_values)) if change.attempt_values and change.expect_attempt else ()
        shape = (
            tuple(sorted(change.values)),
            change.expect_attempt is None,
            change.expect_execution is None,
            change.expect_worker is None,
            change.lease_lapsed_by is None,
            with_attempt,
        )
        shapes.setdefault(shape, []).append(change)
    for (keys, no_attempt, no_execution, no_worker, no_lease, attempt_keys), group in shapes.items():
        where = [
            r.c.id == bindparam("c_id"),
            r.c.status == bindparam("c_status"),
            r.c.environment_id == environment_id,
        ]
        if not no_attempt:
            where.append(r.c.attempt_count == bindparam("c_attempt"))
        if not no_execution:
            where.append(r.c.executions == bindparam("c_execution"))
        if not no_worker:
            where.append(r.c.worker_id == bindparam("c_worker"))
        if not no_lease:
            where.append(r.c.lease_expires_at <= bindparam("c_lapsed"))
        values: dict[str, Any] = {k: bindparam(f"v_{k}") for k in keys} | {"updated_at": bindparam("c_now")}
        params = [
            {
                "c_id": c.run_id,
                "c_status": c.expect_status,
                "c_attempt": c.expect_attempt,
                "c_execution": c.expect_execution,
                "c_worker": c.expect_worker,
                "c_lapsed": c.lease_lapsed_by,
                "c_now": now,
                **{f"v_{k}": (dumps(v) if k in _JSON_COLUMNS and v is not None else v) for k, v in c.values.items()},
            }
            for c in group
        ]
        updated = conn.execute(update(r).where(*where).values(values), params).rowcount
        if conn.dialect.supports_sane_multi_rowcount and updated != len(group):
            raise ServerError(f"{len(group) - updated} run(s) changed under their lock; rolled back")
        if attempt_keys:
            conn.execute(
                update(a)
                .where(a.c.run_id == bindparam("c_id"), a.c.number == bindparam("c_attempt"))
                .values({k: bindparam(f"v_{k}") for k in attempt_keys}),
                [
                    {
                        "c_id": c.run_id,
                        "c_attempt": c.expect_attempt,
                        **{
                            f"v_{k}": (dumps(v) if k == "error" and v is not None else v)
                            for k, v in (c.attempt_values or {}).items()
                        },
                    }
                    for c in group
                ],
            )
    return applied


def _change_holds(row: Any, change: RunChange, environment_id: str) -> bool:
    """Whether ``row`` (the run, as locked) meets the conditions of ``conditional_update``'s UPDATE."""
    return (
        row is not None
        and row.status == change.expect_status
        and row.environment_id == environment_id
        and (change.expect_attempt is None or row.attempt_count == change.expect_attempt)
        and (change.expect_execution is None or row.executions == change.expect_execution)
        and (change.expect_worker is None or row.worker_id == change.expect_worker)
        and (
            change.lease_lapsed_by is None
            or (row.lease_expires_at is not None and row.lease_expires_at <= change.lease_lapsed_by)
        )
        and (change.delay_ended_by is None or row.available_at <= change.delay_ended_by)
        and (
            change.ttl_ended_by is None
            or (row.ttl_expires_at is not None and row.ttl_expires_at <= change.ttl_ended_by and row.started_at is None)
        )
    )


_JSON_COLUMNS = frozenset({"output", "error", "metadata", "tags", "retry", "payload"})
