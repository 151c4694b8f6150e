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
import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import NonRecordingSpan, SpanContext, StatusCode, TraceFlags

from hightide.core.protocol import Execution, Span, SpanEvent
from hightide.sdk.tracing import KIND, OPEN, SEQ

if TYPE_CHECKING:
    from hightide.sdk.journal import RunJournal

Send = Callable[[Span], None]
_INTERNAL = frozenset({KIND, OPEN, SEQ})
_SIGNALS = frozenset({"RunSuspendedSignal", "CancelledError", "GeneratorExit"})
MAX_NAME = 512  # span, event and attribute names (the server's limit)
MAX_ATTRIBUTES = 128  # per span and per event, and events per span
MAX_ATTRIBUTE_LENGTH = 4096  # characters of a string attribute


class RunSpans(SpanProcessor):
    """Sends the spans of the run executing in this process to ``send``."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self._run: dict[str, Any] | None = None  # run_id, attempt, trace_id (int), journal
        self._owners: dict[int, dict[str, Any]] = {}  # spans open in this execution → its run
        self._muted: dict[int, int | None] = {}  # spans of the replayed part → their parents

    @contextlib.contextmanager
    def executing(self, execution: Execution, journal: RunJournal) -> Iterator[None]:
        """While the run executes, its spans hang under its attempt's span (``execution.trace``)."""
        ids = execution.trace
        if ids is None:
            yield
            return
        parent = SpanContext(
            int(ids.trace_id, 16),
            int(ids.span_id, 16),
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        self._owners, self._muted = {}, {}
        self._run = {
            "run_id": execution.run_id,
            "attempt": execution.attempt,
            "trace_id": parent.trace_id,
            "journal": journal,
        }
        token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
        try:
            yield
        finally:
            otel_context.detach(token)
            # Spans still open (a task or thread the run left behind) belong to no execution now.
            self._run, self._owners, self._muted = None, {}, {}

    def visible(self, span_id: int | None) -> int | None:
        """The nearest of ``span_id`` and its ancestors that is recorded (not replayed)."""
        seen = 0
        while span_id in self._muted and seen < 1000:
            span_id, seen = self._muted[span_id], seen + 1
        return span_id

    def current_span_id(self) -> str | None:
        """The recorded span that is current here, for log records."""
        context = trace.get_current_span().get_span_context()
        run = self._run
        if not context.is_valid or run is None or context.trace_id != run["trace_id"]:
            return None
        visible = self.visible(context.span_id)
        return None if visible is None else f"{visible:016x}"

    def on_start(self, span: Any, parent_context: otel_context.Context | None = None) -> None:
        run = self._run
        if run is None or span.context.trace_id != run["trace_id"]:
            return
        span_id = span.context.span_id
        if run["journal"].replaying_here():
            self._muted[span_id] = span.parent.span_id if span.parent else None
        else:
            self._owners[span_id] = run

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is None:
            return
        run = self._owners.pop(span.context.span_id, None)
        if run is None or run is not self._run:  # replayed, or not started in this execution
            return
        parent = self.visible(span.parent.span_id if span.parent else None)
        self.send(_to_message(span, run, parent))


def _to_message(span: ReadableSpan, run: dict[str, Any], parent: int | None) -> Span:
    attributes = dict(span.attributes or {})
    is_open = bool(attributes.get(OPEN))
    status = span.status.status_code
    events = list(span.events)
    if run["journal"].suspending and not is_open:
        # Cut short by the suspension, which is not an error: the block runs on after the resume.
        attributes["hightide.suspended"] = True
        events = [e for e in events if (e.attributes or {}).get("exception.type") not in _SIGNALS]
        if status is StatusCode.ERROR and (span.status.description or "").split(":")[0] in _SIGNALS:
            status = StatusCode.UNSET
    assert span.context is not None and span.start_time is not None
    return Span(
        run_id=run["run_id"],
        attempt=run["attempt"],
        trace_id=f"{span.context.trace_id:032x}",
        span_id=f"{span.context.span_id:016x}",
        parent_span_id=None if parent is None else f"{parent:016x}",
        name=span.name[:MAX_NAME],
        kind=str(attributes.get(KIND, "span")),
        seq=None if attributes.get(SEQ) is None else str(attributes[SEQ]),
        start_time=span.start_time / 1e9,
        end_time=None if is_open or span.end_time is None else span.end_time / 1e9,
        status="ERROR" if status is StatusCode.ERROR else "OK" if status is StatusCode.OK else "UNSET",
        attributes=_attributes(attributes),
        events=tuple(SpanEvent(e.name[:MAX_NAME], e.timestamp / 1e9, _attributes(e.attributes or {})) for e in events),
    )


def _attributes(attributes: Any) -> dict[str, Any]:
    return {k[:MAX_NAME]: _json(v) for k, v in attributes.items() if k not in _INTERNAL}


def _json(value: Any) -> Any:
    """Attribute values as JSON can carry them: NaN and infinities become strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, tuple | list):
        return [_json(v) for v in value]
    return value


def tracer_provider(send: Send, service_name: str) -> tuple[TracerProvider, RunSpans]:
    """The runner's global tracer provider, sending run spans to ``send``. Every span is kept (a
    sampler set in the environment must not drop a run's waits), and sizes are bounded."""
    provider = TracerProvider(
        sampler=ALWAYS_ON,
        resource=Resource.create({"service.name": service_name}),
        span_limits=SpanLimits(
            max_attributes=MAX_ATTRIBUTES,
            max_events=MAX_ATTRIBUTES,
            max_links=0,
            max_event_attributes=MAX_ATTRIBUTES,
            max_attribute_length=MAX_ATTRIBUTE_LENGTH,
        ),
    )
    spans = RunSpans(send)
    provider.add_span_processor(spans)
    trace.set_tracer_provider(provider)
    return provider, spans
