"""The Queues page's actions over HTTP, against a real ``hightide server`` and worker (SQLite and
PostgreSQL): pause and resume a queue, override its concurrency limit and reset it, through the
page's forms with a session and its CSRF token; each answers 303 back to the page with a message.
Without the token nothing changes (403); an unknown queue or a limit that is not one is a message."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import httpx
import pytest

from hightide import Client, RunStatus
from tests.integration.conftest import Stack
from tests.integration.test_dashboard import browser, csrf_of
from tests.integration.test_dashboard_tasks import QUEUES, cell, dashboard, queue_row
from tests.support import assert_eventually, wait_finished

__all__ = ["dashboard"]  # the fixture, shared with the Tasks page's tests

LANE = "lane"  # declared with a concurrency limit of 2 (project/trigger/queues.py)
ECHO = "task/echo"  # a task's own queue: a slash in its name, no limit declared


@pytest.fixture
def queues(client: Client) -> Iterator[None]:
    """The queues these tests change, left as declared afterwards (the stack is shared)."""
    yield
    for name in (LANE, ECHO):
        client.queues.resume(name)
        client.queues.reset_concurrency_limit(name)
    assert_eventually(lambda: client.queues.retrieve(LANE).executing + client.queues.retrieve(LANE).queued == 0)


def act(page: httpx.Client, action: str, **fields: str) -> str:
    """Post one of the page's forms as the page does; the message the page then shows (once)."""
    answer = page.post(f"{QUEUES}/{action}", data={"csrf_token": csrf_of(page), **fields})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == QUEUES
    shown = page.get(QUEUES)
    assert shown.status_code == 200
    found = re.search(r'<p class="alert (ok|error)" role="(?:status|alert)">(.*?)</p>', shown.text, re.DOTALL)
    assert found, "no message on the page"
    assert '<p class="alert' not in page.get(QUEUES).text  # shown once: a reload does not repeat it
    return f"{found.group(1)}: {html.unescape(found.group(2))}"


def row(page: httpx.Client, queue: str) -> str:
    """The queue's row as the page shows it (without the text of the bar of its limit in use)."""
    return re.sub(r"<meter[^>]*>.*?</meter>", "", queue_row(page.get(QUEUES).text, queue))


@pytest.mark.usefixtures("queues")
def test_pause_and_resume_a_queue_from_the_page(dashboard: httpx.Client, client: Client) -> None:
    lane = row(dashboard, LANE)
    assert 'aria-label="Pause lane"' in lane and 'popovertarget="pause-' in lane  # asks first
    assert "Paused" not in cell(lane, "Queue")

    said = act(dashboard, "pause", queue=LANE)
    assert said == "ok: Paused lane: its queued runs wait until you resume it; runs executing now go on."
    assert client.queues.retrieve(LANE).paused
    lane = row(dashboard, LANE)
    assert lane.startswith(('<tr class="paused">', '<tr class="full paused">'))
    assert re.match(r"lane Paused paused \d+s ago ?: queued runs wait$", cell(lane, "Queue"))
    assert 'aria-label="Resume lane"' in lane and 'aria-label="Pause lane"' not in lane

    held = client.trigger("in-lane", {})
    wait_finished(client, client.trigger("echo", {}).id)  # the worker claims, and passes the lane by
    assert client.runs.retrieve(held.id).status == RunStatus.QUEUED
    assert cell(row(dashboard, LANE), "Queued") == "1"
    again = act(dashboard, "pause", queue=LANE)
    assert again.startswith("ok: lane was already paused (since ") and again.endswith("UTC): nothing changed.")

    said = act(dashboard, "resume", queue=LANE)
    assert said == "ok: Resumed lane: its queued runs start again, as its limit allows."
    assert wait_finished(client, held.id).status == RunStatus.COMPLETED
    assert "Paused" not in cell(row(dashboard, LANE), "Queue")
    assert act(dashboard, "resume", queue=LANE) == "ok: lane was not paused: nothing changed."


@pytest.mark.usefixtures("queues")
def test_override_and_reset_a_queues_limit_from_the_page(dashboard: httpx.Client, client: Client) -> None:
    assert cell(row(dashboard, LANE), "Limit") == "2"
    said = act(dashboard, "override", queue=LANE, limit="1")
    assert (
        said
        == "ok: Limit of lane set to 1 (its tasks declare 2): at most 1 run of it execute at once until you reset the limit."
    )
    assert client.queues.retrieve(LANE).concurrency_limit == 1
    lane = row(dashboard, LANE)
    assert cell(lane, "Limit") == "1 override; declared 2 Reset"
    assert 'aria-label="Reset the limit of lane"' in lane

    said = act(dashboard, "override", queue=LANE, limit=" 0 ")
    assert (
        said
        == "ok: Limit of lane set to 0 (its tasks declare 2): none of its runs start until you raise the limit or reset it."
    )
    assert act(dashboard, "reset", queue=LANE) == "ok: Reset the limit of lane: back to 2, as its tasks declare."
    assert client.queues.retrieve(LANE).concurrency_limit_override is None
    assert cell(row(dashboard, LANE), "Limit") == "2"
    assert act(dashboard, "reset", queue=LANE) == "ok: The limit of lane was not overridden: nothing changed."

    # A task's own queue, with a slash in its name and no limit declared.
    said = act(dashboard, "override", queue=ECHO, limit="2147483647")
    assert said.startswith("ok: Limit of task/echo set to 2,147,483,647 (its tasks declare none): at most")
    assert cell(row(dashboard, ECHO), "Limit") == "2,147,483,647 override; none declared Reset"
    said = act(dashboard, "reset", queue=ECHO)
    assert said == "ok: Reset the limit of task/echo: back to none of its own, only the environment's 100 applies."
    assert client.queues.retrieve(ECHO).concurrency_limit is None


@pytest.mark.usefixtures("queues")
def test_an_unknown_queue_or_a_bad_limit_is_a_message_and_changes_nothing(
    dashboard: httpx.Client, client: Client
) -> None:
    said = act(dashboard, "pause", queue="nope/never")
    assert said.startswith("error: Could not pause nope/never: no queue 'nope/never' in this environment")
    assert act(dashboard, "override", queue="nope", limit="3").startswith("error: Could not override nope: no queue")
    assert act(dashboard, "pause", queue=" ") == "error: No queue named: use the buttons of a queue's row."
    for typed in ("abc", "-1", "1.5", "2147483648", "99999999999999", "1e3"):
        said = act(dashboard, "override", queue=LANE, limit=typed)
        assert (
            said
            == f"error: {typed!r} is not a limit: type a whole number from 0 to 2,147,483,647. Nothing was changed."
        )
    assert (
        act(dashboard, "override", queue=LANE) == "error: Type a limit first: a whole number from 0 to 2,147,483,647."
    )
    info = client.queues.retrieve(LANE)
    assert (info.paused, info.concurrency_limit_override, info.concurrency_limit) == (False, None, 2)
    unknown = dashboard.post(f"{QUEUES}/drain", data={"csrf_token": csrf_of(dashboard), "queue": LANE})
    assert unknown.status_code == 404 and "has no action &#39;drain&#39;" in unknown.text


@pytest.mark.usefixtures("queues")
def test_the_actions_are_refused_without_the_csrf_token_or_a_session(
    stack: Stack, dashboard: httpx.Client, client: Client
) -> None:
    for action, fields in (("pause", {}), ("override", {"limit": "1"})):
        refused = dashboard.post(f"{QUEUES}/{action}", data={"queue": LANE, **fields})
        assert refused.status_code == 403
        wrong = dashboard.post(f"{QUEUES}/{action}", data={"queue": LANE, "csrf_token": "0" * 64, **fields})
        assert wrong.status_code == 403
    with browser(stack) as stranger:
        assert stranger.post(f"{QUEUES}/pause", data={"queue": LANE, "csrf_token": "0" * 64}).status_code in (401, 403)
    info = client.queues.retrieve(LANE)
    assert (info.paused, info.concurrency_limit_override) == (False, None)


def test_a_rate_limited_queue_shows_its_rate(dashboard: httpx.Client) -> None:
    assert "rate 2 per 2s" in cell(row(dashboard, "metered"), "Limit")  # project/trigger/queues.py
    assert "rate 1 per 2s per concurrency key" in cell(row(dashboard, "tenant-rate"), "Limit")
    assert "rate " not in cell(row(dashboard, LANE), "Limit")
