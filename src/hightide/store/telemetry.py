"""``store.telemetry``: what runs tell about themselves, log records and spans (see docs/tracing.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, insert, or_, select

from hightide.store import schema as t
from hightide.store.records import Attempt, LogEntry, Run, SpanRecord, Telemetry, dumps, loads
from hightide.store.seam import Seam

SPAN_IDS_PER_QUERY = 500  # bound parameters of one IN list (SQLite allows 32,766; older ones 999)


def _log(row: Any) -> tuple[int, LogEntry]:
    return (
        row.id,
        LogEntry(row.run_id, row.attempt, row.time, row.level, row.message, loads(row.attributes), row.span_id),
    )


class TelemetryOps:
    def __init__(self, seam: Seam) -> None:
        self._seam = seam

    def append_telemetry(self, logs: Sequence[LogEntry], spans: Sequence[SpanRecord] = ()) -> None:
        """Store a worker's batch of log records and spans in one transaction (a report with results
        stores them in the transaction of its results instead: ``update_runs``, ``suspend_runs``)."""
        if not logs and not spans:
            return
        with self._seam.write() as conn:
            insert_telemetry(conn, Telemetry(logs, spans))

    def list_logs(self, run_id: str, after_id: int = 0, limit: int = 1000) -> list[tuple[int, LogEntry]]:
        lg = t.run_logs
        with self._seam.read() as conn:
            rows = conn.execute(
                select(lg).where(lg.c.run_id == run_id, lg.c.id > after_id).order_by(lg.c.id).limit(limit)
            ).all()
        return [_log(row) for row in rows]

    def list_span_logs(
        self, run_id: str, span_ids: Sequence[str], limit: int, attempt: int | None = None
    ) -> list[tuple[int, LogEntry]]:
        """The first ``limit`` log records of ``run_id`` written inside ``span_ids`` (and, with
        ``attempt``, those of that attempt written outside any span), oldest first. ``run_logs``
        has no index on ``span_id``: this reads the run's records in order on ``ix_run_logs_run``
        (run_id, id) until it found ``limit`` (a run's records, not the table's); the ids go
        ``SPAN_IDS_PER_QUERY`` at a time."""
        lg = t.run_logs
        ids = list(dict.fromkeys(span_ids))
        chunks = [ids[i : i + SPAN_IDS_PER_QUERY] for i in range(0, len(ids), SPAN_IDS_PER_QUERY)] or [[]]
        found: dict[int, Any] = {}
        with self._seam.read() as conn:
            for chunk in chunks:
                inside: ColumnElement[bool] = lg.c.span_id.in_(chunk)
                if attempt is not None:
                    inside = or_(inside, and_(lg.c.span_id.is_(None), lg.c.attempt == attempt))
                    attempt = None  # once is enough
                elif not chunk:
                    continue
                stmt = select(lg).where(lg.c.run_id == run_id, inside).order_by(lg.c.id).limit(limit)
                found.update((row.id, row) for row in conn.execute(stmt))
        return [_log(found[log_id]) for log_id in sorted(found)[:limit]]

    def run_traces(self, run_ids: Sequence[str], environment_id: str) -> dict[str, tuple[str | None, str | None]]:
        """The trace id and span id of each of ``run_ids`` found in the environment."""
        r = t.runs
        with self._seam.read() as conn:
            rows = conn.execute(
                select(r.c.id, r.c.trace_id, r.c.span_id).where(
                    r.c.id.in_(run_ids), r.c.environment_id == environment_id
                )
            ).all()
        return {row.id: (row.trace_id, row.span_id) for row in rows}

    def list_spans(self, environment_id: str, trace_id: str, limit: int) -> list[SpanRecord]:
        """The spans recorded in trace ``trace_id`` by the environment's runs, oldest first (a trace
        id is not a secret: runs of other environments may use it too)."""
        s, r = t.spans, t.runs
        with self._seam.read() as conn:
            rows = conn.execute(
                select(s)
                .join(r, r.c.id == s.c.run_id)
                .where(s.c.trace_id == trace_id, r.c.environment_id == environment_id)
                .order_by(s.c.start_time, s.c.id)
                .limit(limit)
            ).all()
        return [SpanRecord.from_row(row) for row in rows]

    def runs_in_trace(self, environment_id: str, trace_id: str, limit: int) -> tuple[list[Run], list[Attempt]]:
        """The runs of trace ``trace_id`` in the environment, oldest first, with their attempts."""
        r, a = t.runs, t.attempts
        with self._seam.read() as conn:
            rows = conn.execute(
                select(r)
                .where(r.c.trace_id == trace_id, r.c.environment_id == environment_id)
                .order_by(r.c.created_at, r.c.id)
                .limit(limit)
            ).all()
            runs = [Run.from_row(row) for row in rows]
            attempts = conn.execute(
                select(a).where(a.c.run_id.in_([run.id for run in runs])).order_by(a.c.run_id, a.c.number)
            ).all()
        return runs, [Attempt.from_row(row) for row in attempts]


def insert_telemetry(conn: Connection, telemetry: Telemetry | None) -> None:
    if telemetry is None:
        return
    if telemetry.logs:
        conn.execute(insert(t.run_logs), [_log_values(e) for e in telemetry.logs])
    if telemetry.spans:
        conn.execute(insert(t.spans), [_span_values(s) for s in telemetry.spans])


def _log_values(e: LogEntry) -> dict[str, object]:
    return {
        "run_id": e.run_id,
        "attempt": e.attempt,
        "time": e.time,
        "level": e.level,
        "message": e.message,
        "attributes": dumps(e.attributes),
        "span_id": e.span_id,
    }


def _span_values(s: SpanRecord) -> dict[str, object]:
    return {
        "trace_id": s.trace_id,
        "span_id": s.span_id,
        "parent_span_id": s.parent_span_id,
        "run_id": s.run_id,
        "attempt": s.attempt,
        "name": s.name,
        "kind": s.kind,
        "seq": s.seq,
        "start_time": s.start_time,
        "end_time": s.end_time,
        "status": s.status,
        "attributes": dumps(s.attributes),
        "events": dumps(s.events),
    }
