"""Trace identity: W3C traceparent parsing, and the span ids derived for attempts."""

from __future__ import annotations

import pytest

from hightide.core.tracing import (
    TraceParent,
    attempt_span_id,
    derived_ids,
    new_span_id,
    new_trace_id,
    parse_traceparent,
)
from hightide.sdk.tracing import human_seconds

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def test_a_w3c_traceparent_names_the_callers_trace_and_span() -> None:
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-01") == TraceParent(TRACE, SPAN)
    assert parse_traceparent(f" 00-{TRACE.upper()}-{SPAN}-00 ") == TraceParent(TRACE, SPAN)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"00-{TRACE}-{SPAN}",
        f"00-{TRACE[:-1]}-{SPAN}-01",
        f"00-{'0' * 32}-{SPAN}-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"00-{TRACE}-{SPAN}-01-extra",
    ],
)
def test_a_missing_or_malformed_traceparent_is_ignored(header: str | None) -> None:
    assert parse_traceparent(header) is None


def test_ids_have_the_w3c_sizes_and_differ() -> None:
    assert len(new_trace_id()) == 32 and len(new_span_id()) == 16
    assert new_trace_id() != new_trace_id() and new_span_id() != new_span_id()


def test_attempt_spans_are_derived_from_the_run_span() -> None:
    first = attempt_span_id(SPAN, 1)
    assert first == attempt_span_id(SPAN, 1) and len(first) == 16
    assert first != attempt_span_id(SPAN, 2) and first != attempt_span_id("1" * 16, 1)
    trace_id, span_id = derived_ids("run_old")
    assert (trace_id, span_id) == derived_ids("run_old") and (len(trace_id), len(span_id)) == (32, 16)


@pytest.mark.parametrize(
    ("seconds", "text"), [(30, "30s"), (0.25, "0.25s"), (90, "1.5m"), (300, "5m"), (7200, "2h"), (86400 * 3, "3d")]
)
def test_durations_read_as_people_write_them_in_span_names(seconds: float, text: str) -> None:
    assert human_seconds(seconds) == text
