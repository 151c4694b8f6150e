"""The store contract, retention: finished runs past the cutoff are found and deleted with what is
theirs; unfinished and recent runs, and tokens still waiting, are kept."""

from __future__ import annotations

from sqlalchemy import func, select

from hightide.store import Store
from hightide.store import schema as t
from hightide.store.records import LogEntry, SpanRecord
from tests.store.factories import NOW, finish, insert, make_env, new_run, new_waitpoint, start_run

DAY = 86400.0


def _rows(store: Store, table: t.Table, run_id: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(table.c.run_id == run_id)).scalar_one())


def test_finished_runs_past_the_cutoff_go_with_their_rows_and_the_rest_stays(store: Store) -> None:
    env = make_env(store)
    old = finish(store, start_run(store, env, now=NOW - 40 * DAY, tags=["nightly"]), now=NOW - 40 * DAY + 5)
    store.telemetry.append_telemetry(
        [LogEntry(old.id, 1, NOW - 40 * DAY, "info", "hello")],
        [SpanRecord("t" * 32, "s" * 16, None, old.id, 1, "step", "step", NOW - 40 * DAY, NOW - 40 * DAY + 1)],
    )
    assert _rows(store, t.run_tags, old.id) == 1
    made = store.waitpoints.create_waitpoint(
        new_waitpoint(env, owner_run_id=old.id, created_at=NOW - 40 * DAY), NOW - 40 * DAY
    )[0]
    store.waitpoints.resolve_waitpoint(made.id, "COMPLETED", NOW - 40 * DAY, output={"ok": True})
    waiting = store.waitpoints.create_waitpoint(new_waitpoint(env, owner_run_id=old.id), NOW - 40 * DAY)[0]
    recent = finish(store, start_run(store, env, now=NOW - DAY), now=NOW - DAY)
    unfinished = insert(store, new_run(env, created_at=NOW - 40 * DAY))[0]

    found = store.retention.expired_runs(NOW - 30 * DAY, 100)
    assert found == [old.id]
    assert store.retention.delete_runs(found) == 1

    assert store.runs.get_run(old.id) is None
    for table in (t.attempts, t.run_logs, t.spans, t.run_tags):
        assert _rows(store, table, old.id) == 0, table.name
    assert store.waitpoints.get_waitpoint(made.id, env) is None
    assert store.waitpoints.get_waitpoint(waiting.id, env) is not None  # someone may still complete it
    assert store.runs.get_run(recent.id) is not None and store.runs.get_run(unfinished.id) is not None
    assert store.retention.expired_runs(NOW - 30 * DAY, 100) == []


def test_expired_runs_come_oldest_first_in_batches_and_a_run_moved_meanwhile_is_kept(store: Store) -> None:
    env = make_env(store)
    runs = [finish(store, start_run(store, env, now=NOW - 50 * DAY + i), now=NOW - 50 * DAY + i) for i in range(5)]
    assert store.retention.expired_runs(NOW - 30 * DAY, 3) == [r.id for r in runs[:3]]
    # Replayed or otherwise changed since it was read: only runs still finished are deleted.
    assert store.retention.delete_runs([runs[0].id, "run_unknown"]) == 1
    assert store.retention.delete_runs([]) == 0
    assert store.retention.expired_runs(NOW - 30 * DAY, 10) == [r.id for r in runs[1:]]
