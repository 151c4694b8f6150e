"""Logs and traces: store what workers report, and assemble a run's trace (see docs/tracing.md).

Spans inside runs are recorded by the runners. Run and attempt spans are derived here from the runs
and attempts themselves, and a wait that suspended its run is stored open: it ends when the
waitpoints of its journal entry resolved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from hightide.core.states import RunStatus
from hightide.core.tracing import attempt_span_id, derived_ids
from hightide.engine.base import EngineBase
from hightide.errors import NotFoundError
from hightide.store.records import Attempt, Environment, LogEntry, Run, SpanRecord

MAX_TRACE_SPANS = 10_000
MAX_TRACE_RUNS = 1_000
_STATUS = {RunStatus.COMPLETED.value: "OK"}
_ERRORS = frozenset(
    s.value
    for s in (
        RunStatus.FAILED,
        RunStatus.CRASHED,
        RunStatus.SYSTEM_FAILURE,
        RunStatus.TIMED_OUT,
        RunStatus.EXPIRED,
    )
)


@dataclass(frozen=True)
class Trace:
    trace_id: str
    spans: list[SpanRecord]
    truncated: bool


def trace_ids(run: Run) -> tuple[str, str]:
    """The run's trace id and span id (derived for runs stored before runs had them)."""
    if run.trace_id and run.span_id:
        return run.trace_id, run.span_id
    return derived_ids(run.id)


class Traces(EngineBase):
    def append_telemetry(self, env: Environment, logs: Sequence[LogEntry], spans: Sequence[SpanRecord]) -> None:
        run_ids = {e.run_id for e in logs} | {s.run_id for s in spans}
        missing = run_ids - set(self.store.get_runs(sorted(run_ids), env.id))
        if missing:
            raise NotFoundError(f"run(s) {sorted(missing)} not found in environment {env.slug!r}")
        self.store.append_telemetry(logs, spans)

    def logs(self, env: Environment, run_id: str, after_id: int = 0) -> list[tuple[int, LogEntry]]:
        self.get_run(env, run_id)
        return self.store.list_logs(run_id, after_id)

    def trace(self, env: Environment, run_id: str) -> Trace:
        """The whole trace ``run_id`` belongs to: its runs (parents and children share it), their
        attempts, and the spans recorded inside them, oldest first."""
        run = self.get_run(env, run_id)
        trace_id, _ = trace_ids(run)
        runs, attempts = self.store.runs_in_trace(env.id, trace_id, MAX_TRACE_RUNS) if run.trace_id else ([run], [])
        if not run.trace_id:
            attempts = self.store.list_attempts(run.id)
        recorded = self.store.list_spans(trace_id, MAX_TRACE_SPANS)
        by_run = {r.id: r for r in runs}
        spans = [_run_span(r) for r in runs]
        spans += [_attempt_span(by_run[a.run_id], a) for a in attempts if a.run_id in by_run]
        spans += self._close_waits(_unique(recorded), by_run)
        spans.sort(key=lambda s: (s.start_time, s.kind != "run"))
        truncated = len(runs) >= MAX_TRACE_RUNS or len(recorded) >= MAX_TRACE_SPANS
        return Trace(trace_id, spans, truncated)

    def _close_waits(self, spans: list[SpanRecord], runs: dict[str, Run]) -> list[SpanRecord]:
        """End each open wait when the waitpoints of its journal entry resolved (or its run ended)."""
        open_waits = [s for s in spans if s.end_time is None and s.seq is not None]
        if not open_waits:
            return spans
        view = self.store.journal_view(sorted({s.run_id for s in open_waits}))
        ends: dict[tuple[str, str], float | None] = {}
        for run_id, entries in view.entries.items():
            for entry in entries:
                waitpoints = [view.waitpoints.get(i) for i in entry.waitpoint_ids]
                done = [w.completed_at for w in waitpoints if w is not None and w.completed_at is not None]
                if waitpoints and len(done) == len(waitpoints):
                    ends[(run_id, entry.seq)] = max(done)
        closed = []
        for span in spans:
            if span in open_waits:
                run = runs.get(span.run_id)
                end = ends.get((span.run_id, span.seq or ""))
                if end is None and run is not None and run.status.is_final:
                    end = run.finished_at
                span = replace(span, end_time=end)
            closed.append(span)
        return closed


def _unique(spans: list[SpanRecord]) -> list[SpanRecord]:
    """A report sent again after a lost reply stores its spans twice: keep one of each."""
    seen: set[tuple[str, str]] = set()
    kept = []
    for span in spans:
        if (span.trace_id, span.span_id) not in seen:
            seen.add((span.trace_id, span.span_id))
            kept.append(span)
    return kept


def _status(value: str) -> str:
    return _STATUS.get(value, "ERROR" if value in _ERRORS else "UNSET")


def _run_span(run: Run) -> SpanRecord:
    trace_id, span_id = trace_ids(run)
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=run.parent_span_id,
        run_id=run.id,
        attempt=run.attempt_count,
        name=run.task_id,
        kind="run",
        start_time=run.created_at,
        end_time=run.finished_at,
        status=_status(run.status.value),
        attributes={"hightide.run.status": run.status.value, "hightide.task.id": run.task_id},
    )


def _attempt_span(run: Run, attempt: Attempt) -> SpanRecord:
    trace_id, span_id = trace_ids(run)
    return SpanRecord(
        trace_id=trace_id,
        span_id=attempt_span_id(span_id, attempt.number),
        parent_span_id=span_id,
        run_id=run.id,
        attempt=attempt.number,
        name=f"attempt {attempt.number}",
        kind="attempt",
        start_time=attempt.started_at,
        end_time=attempt.finished_at,
        status=_status(attempt.status),
        attributes={"hightide.attempt.status": attempt.status, "hightide.worker.id": attempt.worker_id or ""},
        events=[_error_event(attempt)] if attempt.error else [],
    )


def _error_event(attempt: Attempt) -> dict[str, object]:
    error = attempt.error or {}
    return {
        "name": "exception",
        "time": attempt.finished_at or attempt.started_at,
        "attributes": {"exception.type": error.get("name", ""), "exception.message": error.get("message", "")},
    }
