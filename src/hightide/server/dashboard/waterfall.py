"""The run page's trace timeline (a waterfall): the run's span and everything under it (attempts,
steps, waits, its own spans, child runs and theirs), one row per span in tree order, each bar
placed on a shared time axis.

Bars are drawn in SVG, whose ``x`` and ``width`` attributes are not CSS: the page's Content
Security Policy (``style-src 'self'``) forbids inline styles, not these. Depth is a class out of a
fixed set (``d0`` to ``d{MAX_DEPTH}``). Pure: the trace and the time are given."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from hightide.engine.traces import Trace
from hightide.server.dashboard.render import duration
from hightide.store.records import SpanRecord

SCALE = 1000.0
"""The SVG viewBox's width: a bar's x and width are in thousandths of the timeline."""
MIN_WIDTH = 3.0  # an instant (a zero-length span) still shows
MAX_DEPTH = 8
MAX_BARS = 400
TONES = frozenset({"run", "attempt", "step", "wait", "trigger", "token", "release", "span"})
TICKS = (0, 25, 50, 75, 100)


@dataclass(frozen=True)
class Bar:
    span: SpanRecord
    depth: int
    x: float
    width: float
    open: bool
    took: str
    tone: str

    @property
    def indent(self) -> str:
        return f"d{min(self.depth, MAX_DEPTH)}"


@dataclass(frozen=True)
class Waterfall:
    bars: list[Bar]
    ticks: list[tuple[int, str]]  # (percent of the axis, the time since the run was created)
    hidden: int  # rows past MAX_BARS, left out
    truncated: bool  # the trace itself was cut (engine.traces' limits)

    def bar(self, span_id: str) -> Bar | None:
        return next((b for b in self.bars if b.span.span_id == span_id), None)


def build(trace: Trace, run_id: str, child_ids: set[str], now: float) -> Waterfall:
    """The waterfall of ``run_id`` within its ``trace``: its run span and what hangs under it.
    Spans whose parent was never recorded (a child's trigger span not reported yet) hang under
    the attempt of their run, or, for a child run (``child_ids``), under the attempt that
    triggered it."""
    spans = {s.span_id: s for s in trace.spans}
    root = next((s for s in trace.spans if s.kind == "run" and s.run_id == run_id), None)
    if root is None:
        return Waterfall([], [], 0, trace.truncated)
    attempts = sorted((s for s in trace.spans if s.kind == "attempt" and s.run_id == run_id), key=_start)
    children: dict[str, list[SpanRecord]] = defaultdict(list)
    for span in trace.spans:
        if span is root:
            continue
        parent = span.parent_span_id if span.parent_span_id in spans else _adopter(span, root, attempts, child_ids)
        if parent is not None:
            children[parent].append(span)
    ordered: list[tuple[SpanRecord, int]] = []
    seen: set[str] = set()
    stack = [(root, 0)]
    while stack:  # depth first, earliest first
        span, depth = stack.pop()
        if span.span_id in seen:
            continue
        seen.add(span.span_id)
        ordered.append((span, depth))
        later_first = reversed(sorted(children.get(span.span_id, ()), key=_start))  # ties: as the trace has them
        stack.extend((c, depth + 1) for c in later_first)
    hidden = max(0, len(ordered) - MAX_BARS)
    ordered = ordered[:MAX_BARS]
    start = root.start_time
    end = max([_end(s, now) for s, _ in ordered] + [start])
    length = max(end - start, 1e-3)
    bars = []
    for span, depth in ordered:
        x = min(max(0.0, (span.start_time - start) / length * SCALE), SCALE - MIN_WIDTH)
        width = min(max(MIN_WIDTH, (_end(span, now) - span.start_time) / length * SCALE), SCALE - x)
        tone = "error" if span.status == "ERROR" else span.kind if span.kind in TONES else "span"
        took = duration(span.start_time, span.end_time if span.end_time is not None else now)
        bars.append(Bar(span, depth, round(x, 2), round(width, 2), span.end_time is None, took, tone))
    ticks = [(p, "0s" if p == 0 else duration(start, start + length * p / 100)) for p in TICKS]
    return Waterfall(bars, ticks, hidden, trace.truncated)


def _adopter(span: SpanRecord, root: SpanRecord, attempts: list[SpanRecord], child_ids: set[str]) -> str | None:
    if span.run_id == root.run_id:
        own = next((a for a in attempts if a.attempt == span.attempt), None)
        return (own or root).span_id
    if span.kind == "run" and span.run_id in child_ids:
        before = [a for a in attempts if a.start_time <= span.start_time]
        return (before[-1] if before else root).span_id
    return None  # the parent's or a sibling's: not under this run


def _start(span: SpanRecord) -> tuple[float, bool]:
    return (span.start_time, span.kind != "run")


def _end(span: SpanRecord, now: float) -> float:
    return span.end_time if span.end_time is not None else max(now, span.start_time)


__all__ = ["MAX_DEPTH", "SCALE", "Bar", "Waterfall", "build"]
