"""The Run page's pure parts: the waterfall's rows and bars, and HTML sent as one event."""

from __future__ import annotations

from hightide.engine.traces import Trace
from hightide.server import sse
from hightide.server.dashboard.waterfall import MAX_DEPTH, SCALE, build
from hightide.store.records import SpanRecord


def span(span_id: str, parent: str | None, start: float, end: float | None, **more: object) -> SpanRecord:
    values: dict[str, object] = {"run_id": "run_a", "attempt": 1, "name": span_id, "kind": "span", "status": "UNSET"}
    values.update(more)
    return SpanRecord("t", span_id, parent, start_time=start, end_time=end, **values)  # type: ignore[arg-type]


def test_rows_follow_the_tree_and_bars_the_clock() -> None:
    spans = [
        span("up", None, 0.0, 20.0, kind="run", run_id="run_parent"),  # the parent's: not shown
        span("root", "up", 10.0, 20.0, kind="run"),
        span("att", "root", 11.0, 20.0, kind="attempt"),
        span("late", "att", 15.0, 16.0, kind="step"),
        span("early", "att", 12.0, None, kind="wait"),  # still open: it runs to now
        span("child", "gone", 13.0, 14.0, kind="run", run_id="run_child"),  # its trigger span not reported yet
        span("inner", "child", 13.5, 13.5, run_id="run_child", status="ERROR"),
        span("stray", "nowhere", 12.0, 13.0),  # its parent never recorded: under its attempt
        span("other", "gone", 12.0, 13.0, run_id="run_sibling"),  # someone else's
    ]
    wf = build(Trace("t", spans, False), "run_a", {"run_child"}, now=30.0)
    rows = [(b.span.span_id, b.depth) for b in wf.bars]
    assert rows == [("root", 0), ("att", 1), ("early", 2), ("stray", 2), ("child", 2), ("inner", 3), ("late", 2)]
    root, att, early, _, _, inner, late = wf.bars
    assert (root.x, root.width) == (0.0, SCALE / 2)  # the axis runs from the run's creation to now
    assert (late.x, late.width) == (250.0, 50.0)
    assert early.open and early.x + early.width == SCALE and early.took == "18.0s"
    assert inner.width == 3.0 and inner.tone == "error"  # an instant still shows
    assert (att.tone, late.tone, early.tone) == ("attempt", "step", "wait")
    assert wf.ticks[0] == (0, "0s") and wf.ticks[-1] == (100, "20.0s")
    assert wf.bar("late") is late and wf.bar("other") is None


def test_deep_trees_keep_a_bounded_indent_and_a_missing_run_shows_nothing() -> None:
    spans = [span("s0", None, 0.0, 1.0, kind="run")]
    spans += [span(f"s{i}", f"s{i - 1}", 0.0, 1.0) for i in range(1, 15)]
    wf = build(Trace("t", spans, True), "run_a", set(), now=1.0)
    assert len(wf.bars) == 15 and wf.truncated
    assert {b.indent for b in wf.bars[MAX_DEPTH:]} == {f"d{MAX_DEPTH}"}
    assert build(Trace("t", spans, False), "run_elsewhere", set(), now=1.0).bars == []


def test_html_is_sent_as_one_event_of_several_data_lines() -> None:
    sent = sse.event("<p>\n  two\r\nthree\u2028</p>", name="status")
    assert sent == b"event: status\ndata: <p>\ndata:   two\ndata: three\xe2\x80\xa8</p>\n\n"
    assert sse.event('{"a":1}', id="x", name="run") == b'id: x\nevent: run\ndata: {"a":1}\n\n'
