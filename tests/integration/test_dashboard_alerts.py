"""The Alerts page over HTTP, against a real server and a real webhook
receiver: add a webhook with the form (a bad URL shows the form again, as typed, with the reason),
send it a test event and see the delivery logged, disable and enable it, send a delivery again, and
delete it. Without the CSRF token nothing changes."""

from __future__ import annotations

import html
import json
import re

import httpx
import pytest

from hightide import Client
from tests.integration.test_dashboard import csrf_of
from tests.integration.test_dashboard_tasks import ENV, cell, dashboard, row_of
from tests.support import assert_eventually
from tests.webhooks import webhook_receiver

__all__ = ["dashboard"]

ALERTS = f"{ENV}/alerts"


def message(page: httpx.Client) -> str:
    shown = page.get(ALERTS)
    assert shown.status_code == 200
    found = re.search(r'<p class="alert (ok|error)" role="(?:status|alert)">(.*?)</p>', shown.text, re.DOTALL)
    assert found, "no message on the page"
    return f"{found.group(1)}: {html.unescape(found.group(2))}"


def post(page: httpx.Client, action: str, **fields: str) -> httpx.Response:
    return page.post(f"{ALERTS}/{action}", data={"csrf_token": csrf_of(page), **fields})


def act(page: httpx.Client, action: str, **fields: str) -> str:
    answer = post(page, action, **fields)
    assert answer.status_code == 303 and answer.headers["location"] == ALERTS, answer.text
    return message(page)


def section_of(page: str, alert_id: str) -> str:
    found = re.search(rf'<section class="card webhook[^"]*" id="{alert_id}".*?</section>', page, re.DOTALL)
    assert found, f"no webhook {alert_id} on the page"
    return found.group(0)


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)  # the store's side runs on both in test_alerts.py
def test_add_test_disable_redeliver_and_delete_a_webhook_from_the_page(dashboard: httpx.Client, client: Client) -> None:
    with webhook_receiver() as hook:
        refused = post(dashboard, "create", url="example.com/no-scheme", description="pager")
        assert refused.status_code == 422 and "not an absolute http(s) URL" in html.unescape(refused.text)
        assert 'value="example.com/no-scheme"' in refused.text and 'value="pager"' in refused.text  # as typed

        assert act(dashboard, "create", url=hook.url, description="pager").startswith("ok: Created the webhook")
        [alert] = [a for a in client.alerts.list() if a.url == hook.url]
        page = dashboard.get(ALERTS)
        assert page.status_code == 200 and "<h1>Alerts</h1>" in page.text
        part = section_of(page.text, alert.id)
        assert "Enabled" in part and "run.failed" in part and "pager" in part and "No deliveries yet" in part
        assert client.alerts.retrieve(alert.id).secret in part  # behind "Signing secret"

        # Without the CSRF token: refused, nothing sent.
        forged = dashboard.post(f"{ALERTS}/test", data={"alert": alert.id})
        assert forged.status_code == 403 and hook.requests == []

        assert act(dashboard, "test", alert=alert.id).startswith("ok: Sent an alert.test event")
        assert_eventually(lambda: len(hook.requests) == 1, what="the test event")
        assert json.loads(hook.requests[0].body)["type"] == "alert.test"

        def logged() -> str:
            [delivery] = client.alerts.deliveries(alert.id)
            assert delivery.status == "DELIVERED", delivery
            return delivery.id

        delivery_id = assert_eventually(logged, what="the test delivery logged")
        row = row_of(dashboard.get(ALERTS).text, delivery_id)
        assert cell(row, "Status") == "Delivered" and cell(row, "Tries") == "1"
        assert cell(row, "Last try").startswith("200") and cell(row, "Run") == "none"

        said = act(dashboard, "redeliver", alert=alert.id, delivery=delivery_id)
        assert said.startswith(f"ok: Sending {delivery_id} again")
        assert_eventually(lambda: len(hook.requests) == 2, what="the redelivery")
        assert hook.requests[1].body == hook.requests[0].body

        assert act(dashboard, "disable", alert=alert.id).startswith("ok: Disabled the webhook")
        assert "Disabled" in section_of(dashboard.get(ALERTS).text, alert.id)
        assert client.alerts.retrieve(alert.id).enabled is False
        assert "already disabled" in act(dashboard, "disable", alert=alert.id)
        assert act(dashboard, "enable", alert=alert.id).startswith("ok: Enabled the webhook")

        assert act(dashboard, "delete", alert=alert.id).startswith("ok: Deleted the webhook")
        assert alert.id not in dashboard.get(ALERTS).text
        gone = act(dashboard, "test", alert=alert.id)
        assert gone.startswith(f"error: Could not test {alert.id}: no alert")
        assert dashboard.post(f"{ALERTS}/explode", data={"csrf_token": csrf_of(dashboard)}).status_code == 404
