"""Spans of the SDK's own operations: durable operations (triggers, waits, tokens), steps, and
``logger.trace`` blocks. Inside a run they join the run's trace (see docs/tracing.md); outside one
they go to whatever OpenTelemetry tracer provider the application set up, if any.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from hightide.errors import RunSuspendedSignal

KIND = "hightide.kind"  # trigger | wait | token | step | span: how the dashboard draws it
SEQ = "hightide.seq"  # the journal position of a durable operation
OPEN = "hightide.open"  # a wait that suspended the run: it ends when its waitpoints resolve

tracer = trace.get_tracer("hightide")


@contextlib.contextmanager
def span(name: str, kind: str = "span", attributes: dict[str, Any] | None = None) -> Iterator[Span]:
    """A span around a block; an exception ends it as an error. A suspension of the run is not an
    error: the block runs again when the run resumes."""
    with tracer.start_as_current_span(
        name, attributes={KIND: kind, **(attributes or {})}, record_exception=False, set_status_on_exception=False
    ) as current:
        try:
            yield current
        except Exception as exc:
            current.record_exception(exc)
            current.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise


@contextlib.contextmanager
def waiting(current: Span) -> Iterator[None]:
    """Around the part of an operation that may suspend the run: if it does, the span stays open
    until what it waits for resolves (the server ends it then)."""
    try:
        yield
    except RunSuspendedSignal:
        current.set_attribute(OPEN, True)
        raise


_CALLS = {
    "create_token": "wait.create_token",
    "wait_for_token": "wait.for_token",
    "complete_token": "wait.complete_token",
}
_KINDS = {"trigger": "trigger", "batch_trigger": "trigger", "create_token": "token", "complete_token": "token"}


def operation_span(kind: str, name: str, label: str | None) -> contextlib.AbstractContextManager[Span]:
    """The span of a durable operation: ``trigger_and_wait child-task``, ``wait.for_ 30s``."""
    if label is None:
        label = f"{_CALLS.get(kind, kind)} {name}".rstrip()
    return span(label, _KINDS.get(kind, "wait"), {"hightide.operation": kind})


def human_seconds(seconds: float) -> str:
    """``30s``, ``5m``, ``2h``, ``1.5d``: how a duration reads in a span name."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and (seconds / size) * 10 % 1 == 0:
            return f"{seconds / size:g}{unit}"
    return f"{round(seconds, 3):g}s"
