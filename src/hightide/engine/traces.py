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
from hightide.engine.base import EngineCore
from hightide.errors import NotFoundError
from hightide.store.records import Attempt, Environment, LogEntry, Run, SpanRecord, Telemetry

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


def _trace_of(run_id: str, ids: tuple[str | None, str | None]) -> str:
    return ids[0] if ids[0] and ids[1] else derived_ids(run_id)[0]


def trace_ids(run: Run) -> tuple[str, str]:
    """The run's trace id and span id (derived for runs stored before runs had them)."""
    if run.trace_id and run.span_id:
        return run.trace_id, run.span_id
    return derived_ids(run.id)


class Traces:
    """A run's logs and trace, and the telemetry workers send with their results."""

    def __init__(self, core: EngineCore) -> None:
        self.core = core
        self.store = core.store

    def checked_telemetry(
        self, env: Environment, logs: Sequence[LogEntry], spans: Sequence[SpanRecord]
    ) -> Telemetry | None:
        """A worker's logs and spans, ready to store with its results: of runs of the environment
        only, and each span in its run's trace, whatever it says."""
        if not logs and not spans:
            return None
        run_ids = {e.run_id for e in logs} | {s.run_id for s in spans}
        traces = self.store.telemetry.run_traces(sorted(run_ids), env.id)
        missing = run_ids - set(traces)
        if missing:
            raise NotFoundError(f"run(s) {sorted(missing)} not found in environment {env.slug!r}")
        return Telemetry(logs, [replace(s, trace_id=_trace_of(s.run_id, traces[s.run_id])) for s in spans])

    def logs(self, env: Environment, run_id: str, after_id: int = 0, limit: int = 1000) -> list[tuple[int, LogEntry]]:
        self.core.get_run(env, run_id)
        return self.store.telemetry.list_logs(run_id, after_id, limit)

    def span_logs(
        self, env: Environment, run_id: str, span_ids: Sequence[str], limit: int, attempt: int | None = None
    ) -> list[tuple[int, LogEntry]]:
        """The first ``limit`` log records of ``run_id`` written inside ``span_ids`` (with ``attempt``:
        and those of that attempt outside any span), oldest first."""
        self.core.get_run(env, run_id)
        return self.store.telemetry.list_span_logs(run_id, span_ids, limit, attempt)

    def trace(self, env: Environment, run_id: str) -> Trace:
        """The whole trace ``run_id`` belongs to: its runs (parents and children share it), their
        attempts, and the spans recorded inside them, oldest first."""
        run = self.core.get_run(env, run_id)
        trace_id, _ = trace_ids(run)
        runs, attempts = self.store.telemetry.runs_in_trace(env.id, trace_id, MAX_TRACE_RUNS)
        truncated = len(runs) >= MAX_TRACE_RUNS
        if run.id not in {r.id for r in runs}:  # stored before runs had trace ids, or cut off
            runs, attempts = [*runs, run], [*attempts, *self.store.runs.list_attempts(run.id)]
        by_run = {r.id: r for r in runs}
        recorded = self.store.telemetry.list_spans(env.id, trace_id, MAX_TRACE_SPANS)
        truncated = truncated or len(recorded) >= MAX_TRACE_SPANS
        spans = [_run_span(r) for r in runs]
        spans += [_attempt_span(by_run[a.run_id], a) for a in attempts]
        ended = {(a.run_id, a.number): a.finished_at for a in attempts}
        spans += self._close_waits([s for s in _unique(recorded) if s.run_id in by_run], ended)
        spans.sort(key=lambda s: (s.start_time, s.kind != "run"))
        return Trace(trace_id, spans, truncated)

    def _close_waits(self, spans: list[SpanRecord], ended: dict[tuple[str, int], float | None]) -> list[SpanRecord]:
        """End each open wait when the waitpoints of its journal entry resolved, and at the latest
        when its attempt ended (a retried attempt may wait on the same entry again)."""
        open_waits = {s.span_id for s in spans if s.end_time is None and s.seq is not None}
        if not open_waits:
            return spans
        view = self.store.waitpoints.journal_view(sorted({s.run_id for s in spans if s.span_id in open_waits}))
        ends: dict[tuple[str, str], float | None] = {}
        for run_id, entries in view.entries.items():
            for entry in entries:
                waitpoints = [view.waitpoints.get(i) for i in entry.waitpoint_ids]
                done = [w.completed_at for w in waitpoints if w is not None and w.completed_at is not None]
                if waitpoints and len(done) == len(waitpoints):
                    ends[(run_id, entry.seq)] = max(done)
        closed = []
        for span in spans:
            if span.span_id in open_waits and span.end_time is None:
                end = ends.get((span.run_id, span.seq or ""))
                attempt_end = ended.get((span.run_id, span.attempt))
                if attempt_end is not None:
                    end = attempt_end if end is None else min(end, attempt_end)
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
