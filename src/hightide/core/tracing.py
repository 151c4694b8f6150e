"""Trace identity: W3C trace context ids for runs and their attempts (see docs/tracing.md).

A run gets a trace id (its parent's when it has one, so that child runs join their parent's trace)
and a span id of its own at trigger. Its attempts' span ids are derived from the run's, so the
engine and the runner name the same span without storing it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


@dataclass(frozen=True)
class TraceParent:
    """The span a new run hangs under: in another run (a trigger inside a task) or in the caller's
    own trace (an app instrumented with OpenTelemetry)."""

    trace_id: str
    span_id: str


def new_trace_id() -> str:
    return secrets.token_hex(16)


def new_span_id() -> str:
    return secrets.token_hex(8)


def attempt_span_id(run_span_id: str, attempt: int) -> str:
    """The span id of attempt ``attempt`` of the run whose span id is ``run_span_id``."""
    return hashlib.sha256(f"{run_span_id}/attempt/{attempt}".encode()).hexdigest()[:16]


def derived_ids(run_id: str) -> tuple[str, str]:
    """Trace and span ids for a run stored before runs had them (stable, so every read agrees)."""
    digest = hashlib.sha256(run_id.encode()).hexdigest()
    return digest[:32], digest[32:48]


def parse_traceparent(header: str | None) -> TraceParent | None:
    """A W3C ``traceparent`` header (``00-<trace id>-<span id>-<flags>``), or ``None`` if absent or
    malformed: a bad header starts a new trace rather than failing the request."""
    if not header:
        return None
    match = _TRACEPARENT.match(header.strip().lower())
    if match is None:
        return None
    trace_id, span_id = match.groups()
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return TraceParent(trace_id, span_id)
