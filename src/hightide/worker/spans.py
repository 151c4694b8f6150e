"""The runner's OpenTelemetry tracer provider: spans that end inside a run go to the supervisor over
the pipe, like log records, and are stored with the run (see docs/tracing.md).

Replay rules, so that a run's trace reads as one continuous execution:
- a span that starts while the run replays its journal was recorded by an earlier execution: it is
  not sent again, and spans started inside it hang under its nearest recorded ancestor;
- a span cut short by a suspension is sent as it was (``hightide.suspended``), without an error;
- a wait that suspended the run is sent open (no end): the server ends it when the wait resolves.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, StatusCode, TraceFlags

from hightide.sdk.tracing import KIND, OPEN, SEQ

if TYPE_CHECKING:
    from hightide.sdk.journal import RunJournal

Send = Callable[[dict[str, Any]], None]
_INTERNAL = frozenset({KIND, OPEN, SEQ})


class RunSpans(SpanProcessor):
    """Sends the spans of the run executing in this process to ``send``."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self._lock = threading.Lock()
        self._run: dict[str, Any] | None = None  # run_id, attempt, trace_id (int)
        self._journal: RunJournal | None = None
        self._muted: dict[int, int | None] = {}  # spans of the replayed part → their parents

    @contextlib.contextmanager
    def executing(self, execution: dict[str, Any], journal: RunJournal) -> Iterator[None]:
        """While the run executes, its spans hang under its attempt's span (``execution["trace"]``)."""
        ids = execution.get("trace") or {}
        if not ids:
            yield
            return
        parent = SpanContext(
            int(ids["trace_id"], 16),
            int(ids["span_id"], 16),
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        with self._lock:
            self._run = {"run_id": execution["run_id"], "attempt": execution["attempt"], "trace_id": parent.trace_id}
            self._journal, self._muted = journal, {}
        token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
        try:
            yield
        finally:
            otel_context.detach(token)
            with self._lock:
                self._run, self._journal, self._muted = None, None, {}

    def visible(self, span_id: int | None) -> int | None:
        """The nearest of ``span_id`` and its ancestors that is recorded (not replayed)."""
        seen = 0
        while span_id in self._muted and seen < 1000:
            span_id, seen = self._muted[span_id], seen + 1
        return span_id

    def current_span_id(self) -> str | None:
        """The recorded span that is current here, for log records."""
        context = trace.get_current_span().get_span_context()
        if not context.is_valid or self._run is None or context.trace_id != self._run["trace_id"]:
            return None
        visible = self.visible(context.span_id)
        return None if visible is None else f"{visible:016x}"

    def on_start(self, span: Any, parent_context: otel_context.Context | None = None) -> None:
        journal = self._journal
        if self._run is not None and journal is not None and journal.replaying:
            self._muted[span.context.span_id] = span.parent.span_id if span.parent else None

    def on_end(self, span: ReadableSpan) -> None:
        run, journal = self._run, self._journal
        context = span.context
        if run is None or context is None or context.trace_id != run["trace_id"] or context.span_id in self._muted:
            return
        self.send(_to_message(span, run, self.visible(span.parent.span_id if span.parent else None), journal))


def _to_message(span: ReadableSpan, run: dict[str, Any], parent: int | None, journal: RunJournal | None) -> dict:
    attributes = dict(span.attributes or {})
    is_open = bool(attributes.get(OPEN))
    status = span.status.status_code
    suspended = journal is not None and journal.suspending
    if suspended and not is_open:
        attributes["hightide.suspended"] = True  # cut short by the suspension; not an error
    assert span.context is not None and span.start_time is not None
    return {
        "type": "span",
        "run_id": run["run_id"],
        "attempt": run["attempt"],
        "trace_id": f"{span.context.trace_id:032x}",
        "span_id": f"{span.context.span_id:016x}",
        "parent_span_id": None if parent is None else f"{parent:016x}",
        "name": span.name,
        "kind": str(attributes.get(KIND, "span")),
        "seq": attributes.get(SEQ),
        "start_time": span.start_time / 1e9,
        "end_time": None if is_open or span.end_time is None else span.end_time / 1e9,
        "status": "ERROR" if status is StatusCode.ERROR else "OK" if status is StatusCode.OK else "UNSET",
        "attributes": {k: _json(v) for k, v in attributes.items() if k not in _INTERNAL},
        "events": [
            {
                "name": e.name,
                "time": e.timestamp / 1e9,
                "attributes": {k: _json(v) for k, v in (e.attributes or {}).items()},
            }
            for e in span.events
        ],
    }


def _json(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def tracer_provider(send: Send, service_name: str) -> tuple[TracerProvider, RunSpans]:
    """The runner's global tracer provider, sending run spans to ``send``."""
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    spans = RunSpans(send)
    provider.add_span_processor(spans)
    trace.set_tracer_provider(provider)
    return provider, spans
