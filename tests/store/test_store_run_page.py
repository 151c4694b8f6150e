"""What the dashboard's Run page reads of the store: a run's children on ``ix_runs_parent``, and the
log records of one span, however many the run wrote before it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from hightide.store import Store
from hightide.store.records import LogEntry
from tests.store.factories import NOW, insert, make_env, new_run


def test_children_of_reads_the_first_children_oldest_first_on_the_parent_index(store: Store) -> None:
    env = make_env(store)
    other = make_env(store, "prod")
    parent = insert(store, new_run(env))[0]
    insert(store, *[new_run(env, created_at=NOW + i) for i in range(1, 20)])  # runs of no parent
    children = insert(store, *[new_run(env, created_at=NOW + 30 - i, parent_run_id=parent.id) for i in range(5)])
    insert(store, new_run(other, parent_run_id=parent.id))  # not of this environment (a made-up case)
    oldest_first = sorted(children, key=lambda run: (run.created_at, run.id))

    statements: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        statements.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", seen)
    try:
        shown, more = store.runs.children_of(env, parent.id, 3)
    finally:
        event.remove(store.engine, "before_cursor_execute", seen)
    assert [run.id for run in shown] == [run.id for run in oldest_first[:3]] and more
    shown, more = store.runs.children_of(env, parent.id, 5)
    assert [run.id for run in shown] == [run.id for run in oldest_first] and not more
    assert store.runs.children_of(env, "run_none", 5) == ([], False)

    if store.engine.dialect.name == "sqlite":
        [(statement, parameters)] = [(s, p) for s, p in statements if "FROM runs" in s]
        with store.engine.connect() as conn:
            plan = " ".join(
                row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, tuple(parameters))
            )
        assert "USING INDEX ix_runs_parent" in plan, plan


def _log(run_id: str, attempt: int, i: int, span_id: str | None) -> LogEntry:
    return LogEntry(run_id, attempt, NOW + i, "info", f"log {i}", {}, span_id)


def test_the_logs_of_a_span_come_after_more_than_a_thousand_of_others(store: Store) -> None:
    env = make_env(store)
    run = insert(store, new_run(env))[0]
    early = [_log(run.id, 1, i, "aaaaaaaaaaaaaaaa") for i in range(1500)]
    outside = [_log(run.id, 1, 1500, None), _log(run.id, 2, 1501, None)]
    late = [_log(run.id, 2, 1502 + i, "bbbbbbbbbbbbbbbb") for i in range(3)]
    store.telemetry.append_telemetry([*early, *outside, *late])

    found = store.telemetry.list_span_logs(run.id, ["bbbbbbbbbbbbbbbb"], 500)
    assert [entry.message for _, entry in found] == ["log 1502", "log 1503", "log 1504"]
    # Many span ids (more than one query's worth), the first 2 records only, in order.
    many = [f"{i:016x}" for i in range(1200)] + ["bbbbbbbbbbbbbbbb"]
    assert [e.message for _, e in store.telemetry.list_span_logs(run.id, many, 2)] == ["log 1502", "log 1503"]
    # An attempt's: its records outside any span too.
    in_attempt = store.telemetry.list_span_logs(run.id, ["bbbbbbbbbbbbbbbb"], 500, attempt=2)
    assert [entry.message for _, entry in in_attempt] == ["log 1501", "log 1502", "log 1503", "log 1504"]
    first = store.telemetry.list_span_logs(run.id, ["aaaaaaaaaaaaaaaa"], 500)
    assert len(first) == 500 and first[0][1].message == "log 0" and first[-1][1].message == "log 499"
    assert store.telemetry.list_span_logs(run.id, [], 500) == []
    assert store.telemetry.list_span_logs("run_none", ["bbbbbbbbbbbbbbbb"], 500) == []
