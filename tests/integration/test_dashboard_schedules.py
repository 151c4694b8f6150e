"""The Schedules page over HTTP, against a real ``hightide server`` and worker (SQLite and
PostgreSQL): the declared schedule of the shared project with its next ticks; create one with the
form (a bad pattern shows the form again, as typed, with the reason), deactivate and activate it, and
delete it; a declared one cannot be deleted. Without the CSRF token nothing changes."""

from __future__ import annotations

import html
import re

import httpx

from hightide import Client
from tests.integration.test_dashboard import csrf_of
from tests.integration.test_dashboard_tasks import ENV, cell, dashboard, row_of

__all__ = ["dashboard"]

SCHEDULES = f"{ENV}/schedules"
DECLARED = "scheduled-declared"  # 0 3 29 2 * in Europe/Paris (project/trigger/scheduled.py)


def message(page: httpx.Client) -> str:
    shown = page.get(SCHEDULES)
    assert shown.status_code == 200
    found = re.search(r'<p class="alert (ok|error)" role="(?:status|alert)">(.*?)</p>', shown.text, re.DOTALL)
    assert found, "no message on the page"
    return f"{found.group(1)}: {html.unescape(found.group(2))}"


def post(page: httpx.Client, action: str, **fields: str) -> httpx.Response:
    return page.post(f"{SCHEDULES}/{action}", data={"csrf_token": csrf_of(page), **fields})


def act(page: httpx.Client, action: str, schedule_id: str) -> str:
    answer = post(page, action, schedule=schedule_id)
    assert answer.status_code == 303 and answer.headers["location"] == SCHEDULES, answer.text
    return message(page)


def test_the_declared_schedule_shows_its_next_ticks_and_cannot_be_deleted(
    dashboard: httpx.Client, client: Client
) -> None:
    [declared] = [s for s in client.schedules.list(kind="declarative") if s.task == DECLARED]
    page = dashboard.get(SCHEDULES)
    assert page.status_code == 200 and "<h1>Schedules</h1>" in page.text  # the page itself, not "soon"
    row = row_of(page.text, declared.id)
    assert cell(row, "Kind") == "in code"
    assert cell(row, "Pattern") == "0 3 29 2 * Europe/Paris"
    ticks = re.findall(r'<time datetime="([^"]+)"', re.search(r'data-label="Next runs".*?</td>', row, re.DOTALL)[0])
    assert len(ticks) == 5 and all("-02-29T02:00:00" in tick for tick in ticks), ticks  # 03:00 in Paris
    assert "Delete" not in cell(row, "Actions")

    refused = act(dashboard, "delete", declared.id)
    assert refused.startswith("error: Could not delete") and "declared by task 'scheduled-declared'" in refused
    try:
        assert act(dashboard, "deactivate", declared.id).startswith(
            "ok: Deactivated the schedule of scheduled-declared"
        )
        row = row_of(dashboard.get(SCHEDULES).text, declared.id)
        assert "Inactive" in cell(row, "Task") and cell(row, "Next runs") == "none while inactive"
        assert not client.schedules.retrieve(declared.id).active
    finally:
        assert act(dashboard, "activate", declared.id).startswith("ok: Activated the schedule")
    assert client.schedules.retrieve(declared.id).active


def test_create_deactivate_and_delete_a_schedule_from_the_page(dashboard: httpx.Client, client: Client) -> None:
    typed = {"task": "scheduled-echo", "cron": "*/5  * * * *", "timezone": "Europe/London", "external_id": "user-7"}
    bad = post(dashboard, "create", **{**typed, "cron": "61 * * * *"})
    assert bad.status_code == 422
    assert 'class="alert error"' in bad.text and "61" in bad.text
    assert 'value="Europe/London"' in bad.text and 'value="61 * * * *"' in bad.text  # the form as typed
    assert not [s for s in client.schedules.list() if s.external_id == "user-7"]

    made = post(dashboard, "create", **typed)
    assert made.status_code == 303, made.text
    assert message(dashboard) == "ok: Created the schedule of scheduled-echo (*/5 * * * *, Europe/London)."
    [schedule] = [s for s in client.schedules.list() if s.external_id == "user-7"]
    try:
        assert (schedule.cron, schedule.timezone, schedule.kind) == ("*/5 * * * *", "Europe/London", "imperative")
        row = row_of(dashboard.get(SCHEDULES).text, schedule.id)
        assert cell(row, "Kind") == "imperative" and "external id user-7" in cell(row, "Task")
        assert cell(row, "Last run") == "not yet"

        assert act(dashboard, "deactivate", schedule.id).startswith("ok: Deactivated")
        assert not client.schedules.retrieve(schedule.id).active
        assert act(dashboard, "deactivate", schedule.id).endswith("was already inactive: nothing changed.")
        assert act(dashboard, "activate", schedule.id).startswith("ok: Activated")

        no_token = dashboard.post(f"{SCHEDULES}/delete", data={"schedule": schedule.id})
        assert no_token.status_code == 403
        assert client.schedules.retrieve(schedule.id).active
        assert (
            act(dashboard, "delete", schedule.id)
            == "ok: Deleted the schedule of scheduled-echo (*/5 * * * *); the runs it fired stay."
        )
    finally:
        for left in [s for s in client.schedules.list() if s.external_id == "user-7"]:
            client.schedules.delete(left.id)
    assert schedule.id not in dashboard.get(SCHEDULES).text
    assert act(dashboard, "delete", schedule.id).startswith(f"error: Could not delete {schedule.id}")
