"""What the shell prints: ids whole at any terminal width, waits named with how to end them."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from hightide.cli.render import print_runs, print_tokens, queue_rate, trace_tree, waiting_lines

RUNS = [
    {
        "id": f"run_01m8s4yy35b39vafvctnd{i}",
        "task_id": "a-task-with-a-rather-long-name",
        "status": "COMPLETED",
        "attempt_count": 1,
        "created_at": "2026-12-01T15:53:18Z",
        "finished_at": "2026-12-01T15:53:19Z",
    }
    for i in range(3)
]


def _console(width: int) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=width, no_color=True, highlight=False), out


@pytest.mark.parametrize("width", [30, 50, 80, 120])
def test_run_and_token_ids_are_never_cut_whatever_the_width(width: int) -> None:
    console, out = _console(width)
    print_runs(console, RUNS)
    tokens = [{"id": "waitpoint_01m8s51bhqegm3yt9m1vpr", "status": "WAITING", "tags": ["approval"]}]
    print_tokens(console, tokens)
    text = out.getvalue()
    for run in RUNS:
        assert run["id"] in text, text
    assert "waitpoint_01m8s51bhqegm3yt9m1vpr" in text, text
    if width >= 80:  # a table that fits the terminal
        assert all(len(line) <= width for line in text.splitlines()), text


def test_each_wait_says_how_it_ends() -> None:
    lines = waiting_lines(
        [
            {"kind": "TOKEN", "token_id": "waitpoint_1", "url": "http://h/cb", "timeout_at": None},
            {"kind": "RUN", "run_id": "run_child"},
            {"kind": "DURATION", "resume_at": "2999-01-01T00:00:00Z"},
        ]
    )
    text = "\n".join(lines)
    assert "hightide tokens complete waitpoint_1" in text and "http://h/cb" in text
    assert "hightide runs get run_child" in text
    assert "2999-01-01" in text or "2998-12-31" in text  # local time


def test_a_trace_is_a_tree_of_its_spans_with_durations() -> None:
    spans = [
        {
            "span_id": "a",
            "parent_span_id": None,
            "name": "parent",
            "kind": "run",
            "duration_ms": 2500.0,
            "run_id": "run_p",
            "attributes": {"hightide.run.status": "COMPLETED"},
        },
        {"span_id": "b", "parent_span_id": "a", "name": "attempt 1", "kind": "attempt", "duration_ms": 2400.0},
        {"span_id": "c", "parent_span_id": "b", "name": "wait.for_ 2s", "kind": "wait", "duration_ms": None},
    ]
    console, out = _console(120)
    console.print(trace_tree({"trace_id": "t1", "spans": spans}))
    lines = out.getvalue().splitlines()
    assert "parent" in lines[1] and "2.50 s" in lines[1] and "run_p" in lines[1]
    assert "attempt 1" in lines[2] and lines[2].index("attempt") > lines[1].index("parent")
    assert "wait.for_ 2s" in lines[3] and "running" in lines[3]


def test_a_queues_rate_limit_reads_as_a_person_writes_it() -> None:
    assert queue_rate({"rate_limit": None}) == "none"
    assert queue_rate({"rate_limit": {"limit": 60, "period": 60.0, "per": None}}) == "60 per 1m"
    per_key = {"limit": 5000, "period": 1.5, "per": "concurrency_key"}
    assert queue_rate({"rate_limit": per_key}) == "5,000 per 1.5s per concurrency key"
    assert queue_rate({"rate_limit": {"limit": 1, "period": 7200, "per": None}}) == "1 per 2h"
