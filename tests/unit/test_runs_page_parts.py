"""The Runs page's parts that need no server: its filters as the list query and the live stream
read them, and what the bulk actions' strip says."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from hightide.core.states import RunStatus
from hightide.engine.realtime import Subscription, Update
from hightide.errors import ValidationError
from hightide.server import sse
from hightide.server.dashboard.runs_bulk import back_to, ticked
from hightide.server.dashboard.runs_bulk_view import BulkView
from hightide.server.dashboard.runs_filters import RunsQuery, matches
from hightide.server.dashboard.runs_live import _ListStream
from hightide.store.live import RunView
from hightide.store.records import BulkAction
from tests.unit.test_realtime_parts import _run

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp()


def test_the_filters_become_one_index_friendly_run_filter() -> None:
    query = RunsQuery.parse({"status": "QUEUED", "task": " resize ", "tag": "a", "version": "3", "period": "24h"})
    flt = query.run_filter(NOW)
    assert flt.statuses == ("QUEUED",) and flt.task_ids == ("resize",) and flt.tag == "a" and flt.version == "3"
    assert flt.created_from == NOW - 86400 and flt.created_to is None
    assert query.url("/r") == "/r?status=QUEUED&task=resize&tag=a&version=3&period=24h"
    assert query.url("/r", cursor="abc").endswith("&cursor=abc")
    days = RunsQuery.parse({"from": "2026-11-30", "to": "2026-11-30", "period": "30d"}).run_filter(NOW)
    assert days.created_from == datetime(2026, 11, 30, tzinfo=UTC).timestamp()  # the later of the two starts
    assert days.created_to == datetime(2026, 12, 1, tzinfo=UTC).timestamp()  # the "to" day included
    assert not RunsQuery.parse({}).filtered and RunsQuery.parse({}).first_page
    for bad in ({"status": "DONE"}, {"period": "1y"}, {"to": "12/01/2026"}):
        with pytest.raises(ValidationError):
            RunsQuery.parse(bad)


def test_the_live_stream_matches_runs_as_the_list_query_does() -> None:
    run = replace(_run("run_a", RunStatus.QUEUED, NOW), task_id="resize", tags=["a", "b"], version="3", created_at=NOW)
    assert matches(run, RunsQuery.parse({"status": "QUEUED", "tag": "b", "version": "3"}).run_filter(NOW))
    assert matches(run, RunsQuery.parse({"period": "1h"}).run_filter(NOW + 3599))
    for values in ({"status": "EXECUTING"}, {"task": "other"}, {"tag": "c"}, {"version": "2"}, {"to": "2026-11-30"}):
        assert not matches(run, RunsQuery.parse(values).run_filter(NOW)), values
    assert not matches(run, RunsQuery.parse({"period": "1h"}).run_filter(NOW + 3601))


def test_the_bulk_strip_says_what_each_action_selected_and_how_far_it_is() -> None:
    assert ticked([" run_a", "run_b", "run_a", ""]) == ["run_a", "run_b"]
    assert back_to("/r?tag=a", "/r") == "/r?tag=a" and back_to("https://evil.example/r", "/r") == "/r"
    assert back_to("/elsewhere?tag=a", "/r") == "/r"
    by_ids = BulkView(BulkAction("bulk_1", "env", "cancel", {"ids": ["a", "b"]}, "RUNNING", 2, processed=1))
    assert (by_ids.verb, by_ids.selected, by_ids.percent, by_ids.running) == ("Cancel", "2 runs ticked", 50, True)
    assert (by_ids.status, by_ids.status_class, by_ids.done_label) == ("Running", "executing", "cancelled")
    flt = {"statuses": ["QUEUED", "TIMED_OUT"], "task_ids": ["resize"], "tag": "n", "created_to": NOW}
    failures = [[f"run_{n}", "boom"] for n in range(7)]
    by_filter = BulkView(
        BulkAction(
            "bulk_2", "env", "replay", {"filter": flt}, "ABORTED", 1200, failed=9, failures=failures, created_at=NOW
        )
    )
    assert by_filter.selected == "all 1,200 runs matching status Queued or Timed out · task resize · tag n"
    assert (by_filter.status, by_filter.status_class, by_filter.done_label) == ("Aborted", "delayed", "replayed")
    assert len(by_filter.failures) == 5 and by_filter.more_failures == 4
    earlier = BulkView(
        BulkAction(
            "bulk_3", "env", "cancel", {"filter": {**flt, "created_to": NOW - 60}}, "COMPLETED", 0, created_at=NOW
        )
    )
    assert earlier.selected.endswith("created before 2026-12-01 11:59:00 UTC") and earlier.percent == 100


def test_an_event_of_several_lines_is_framed_line_by_line() -> None:
    assert (
        sse.event("<tr>\n<td>a</td>\n</tr>", name="row") == b"event: row\ndata: <tr>\ndata: <td>a</td>\ndata: </tr>\n\n"
    )
    assert sse.event('{"a":1}', id="x") == b'id: x\ndata: {"a":1}\n\n'


def _list_stream() -> _ListStream:
    env = SimpleNamespace(project_slug="p", slug="dev")
    nav: Any = SimpleNamespace(url=lambda section: f"/projects/{env.project_slug}/env/{env.slug}/{section}")
    signed_in: Any = SimpleNamespace(csrf="token")
    return _ListStream(signed_in, nav, RunsQuery.parse({}), NOW)


async def test_the_live_list_inserts_every_new_run_of_a_batch_whatever_its_order() -> None:
    live = _list_stream()
    old = replace(_run("run_old", RunStatus.QUEUED, NOW), created_at=NOW - 10)
    live.shown, live.top, live.listed = {old.id}, (old.created_at, old.id), True
    new = [replace(_run(f"run_{n}", RunStatus.QUEUED, NOW + n), created_at=NOW + n) for n in (3, 2, 1)]
    events = await live.encode([Update(RunView(run), NOW + 3) for run in new])  # newest first
    assert len(events) == 1 and b"\nevent: insert\n" in events[0]
    text = events[0].decode()
    places = [text.index(f'id="run-run_{n}"') for n in (3, 2, 1)]
    assert places == sorted(places)  # newest on top
    assert live.shown == {"run_old", "run_1", "run_2", "run_3"} and live.inserted == 3
    assert live.top == (NOW + 3, "run_3")


async def test_the_live_list_asks_for_a_reload_when_its_subscription_dropped_states() -> None:
    live = _list_stream()
    sub = Subscription("env_1", max_pending=2)
    live.overflowed = sub.overflowed
    assert await live.quiet() == [sse.PING]
    for n in range(3):  # more runs changed than a stalled reader's subscription holds
        sub.offer(Update(RunView(replace(_run(f"run_{n}", RunStatus.QUEUED, NOW), created_at=NOW + n)), NOW))
    assert await sub.take(1.0) == []
    events = await live.quiet()
    assert len(events) == 1 and b"\nevent: reload\n" in events[0]
    assert b"Many runs changed" in events[0] and b'href="/projects/p/env/dev/runs"' in events[0]
    assert await live.quiet() == [sse.PING]  # said once
    late = replace(_run("run_late", RunStatus.QUEUED, NOW), created_at=NOW + 10)
    assert await live.encode([Update(RunView(late), NOW)]) == []  # a stale page inserts nothing more


def test_times_past_the_dates_python_can_name_are_shown_as_the_last_one() -> None:
    from hightide.server.dashboard.render import iso, when
    from hightide.server.dashboard.run import clock

    assert when(1e17) == "9999-12-31 23:59:59" and when(-1e17).endswith("1-01-01 00:00:00")
    assert iso(1e17).startswith("9999-12-31T23:59:59") and clock(1e17) == "23:59:59.999"
    assert when(0) == "1970-01-01 00:00:00"
