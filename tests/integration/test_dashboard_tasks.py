"""The dashboard's Tasks, Queues and Tokens pages over HTTP, against a real ``hightide server`` and
worker (SQLite and PostgreSQL): what they list and count, the Test form that triggers a run, and
completing a waitpoint token."""

from __future__ import annotations

import html
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hightide import Client
from tests.integration.conftest import Stack
from tests.integration.test_dashboard import browser, csrf_of, new_link
from tests.support import assert_eventually, wait_finished

ENV = "/projects/default/env/dev"
TASKS = f"{ENV}/tasks"
QUEUES = f"{ENV}/queues"
TOKENS = f"{ENV}/tokens"
RUN_URL = re.compile(rf"^{ENV}/runs/(run_[0-9a-z]+)$")


@pytest.fixture
def dashboard(stack: Stack) -> Iterator[httpx.Client]:
    """A browser-like client signed in as the admin."""
    with browser(stack) as client:
        assert client.get(new_link(stack)).status_code == 303
        yield client


def row_of(page: str, marker: str) -> str:
    """The table row (``<tr>...</tr>``) of ``page`` that contains ``marker``."""
    rows = [row for row in re.findall(r"<tr[ >].*?</tr>", page, re.DOTALL) if marker in row]
    assert rows, f"no row with {marker!r} in the page"
    return rows[0]


def counts_in(fragment: str) -> dict[str, int]:
    """The status badges with numbers in ``fragment``: ``{"Completed": 3, "Queued": 1}``."""
    found = re.findall(r'class="status s-[a-z_]+"[^>]*>([A-Za-z ]+?) <b>([\d,]+)</b>', fragment)
    return {label: int(n.replace(",", "")) for label, n in found}


def textarea(page: str, name: str) -> str:
    found = re.search(rf'<textarea[^>]* name="{name}"[^>]*>(.*?)</textarea>', page, re.DOTALL)
    assert found, f"no textarea {name!r}"
    return html.unescape(found.group(1))


def cell(row: str, label: str) -> str:
    found = re.search(rf'<td data-label="{label}"[^>]*>(.*?)</td>', row, re.DOTALL)
    assert found, f"no {label!r} cell in {row}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1))).strip()


def test_the_tasks_page_lists_the_current_version_with_counts(
    stack: Stack,
    dashboard: httpx.Client,
    client: Client,
) -> None:
    before = counts_in(row_of(dashboard.get(TASKS).text, 'href="/projects/default/env/dev/tasks/ship"'))
    shipment = {"order_id": "A-1", "quantity": 2, "address": {"city": "Berlin", "postcode": "10115"}}
    ids = [client.trigger("ship", shipment).id for _ in range(3)]
    for run_id in ids:
        wait_finished(client, run_id)

    page = dashboard.get(TASKS)
    assert page.status_code == 200
    assert "Runs created in the last 24 hours" in page.text
    assert re.search(r"Version <span class=\"mono\">\d{8}\.\d+</span>", page.text)
    row = row_of(page.text, 'href="/projects/default/env/dev/tasks/ship"')
    assert "Ship an order to its address" in row
    assert cell(row, "Queue") == "task/ship"
    assert cell(row, "Machine") == "small-2x"
    assert cell(row, "Retry") == "no retries"
    assert counts_in(row).get("Completed", 0) == before.get("Completed", 0) + 3
    echo = row_of(page.text, 'href="/projects/default/env/dev/tasks/echo"')
    assert cell(echo, "Machine") == "small-1x" and cell(echo, "Retry") == "2 attempts, 50ms → 100ms backoff"
    for task_id in ("order", "token-waiter", "never-runs", "signup"):  # every task of the version
        assert f'href="/projects/default/env/dev/tasks/{task_id}"' in page.text

    week = dashboard.get(TASKS, params={"period": "7d"})
    assert "Runs created in the last 7 days" in week.text
    assert counts_in(row_of(week.text, "tasks/ship"))["Completed"] >= counts_in(row)["Completed"]


def test_the_test_form_is_prefilled_from_the_tasks_schema(dashboard: httpx.Client) -> None:
    page = dashboard.get(f"{TASKS}/ship")
    assert page.status_code == 200
    assert json.loads(textarea(page.text, "payload")) == {
        "order_id": "string",
        "quantity": 1,  # the smallest whole number above its exclusive minimum of 0
        "express": False,
        "address": {"city": "string", "postcode": "10115"},
    }
    assert "prefilled from the schema" in page.text and "Payload schema" in page.text
    for machine in ("micro", "small-1x", "large-2x"):
        assert f'<option value="{machine}">{machine}</option>' in page.text
    assert "Task's default (small-2x)" in page.text
    for name in ("delay", "tags", "idempotency_key"):
        assert f'name="{name}"' in page.text

    untyped = dashboard.get(f"{TASKS}/echo")  # `payload: dict`: any object
    assert json.loads(textarea(untyped.text, "payload")) == {}
    missing = dashboard.get(f"{TASKS}/no-such-task")
    assert missing.status_code == 404 and "no task &#39;no-such-task&#39;" in missing.text and "<html" in missing.text


def test_a_valid_test_run_opens_the_run_and_is_listed_on_the_task_page(
    dashboard: httpx.Client,
    client: Client,
) -> None:
    tag = f"dash-{uuid.uuid4().hex[:8]}"
    payload = {"order_id": "T-1", "quantity": 3, "address": {"city": "Lyon", "postcode": "69001"}}
    form = {
        "csrf_token": csrf_of(dashboard),
        "payload": json.dumps(payload),
        "tags": f"{tag}, second",
        "idempotency_key": f"key-{tag}",
        "machine": "micro",
        "delay": "",
    }
    answer = dashboard.post(f"{TASKS}/ship", data=form)
    assert answer.status_code == 303, answer.text
    found = RUN_URL.match(answer.headers["location"])
    assert found, answer.headers["location"]
    run = wait_finished(client, found.group(1))
    assert run.status == "COMPLETED" and run.tags == [tag, "second"]
    assert run.output == {"shipped": "T-1", "to": "Lyon"}

    again = dashboard.post(f"{TASKS}/ship", data=form)  # the same idempotency key: the same run
    assert again.status_code == 303 and again.headers["location"] == answer.headers["location"]

    delayed = dashboard.post(f"{TASKS}/ship", data={**form, "idempotency_key": "", "delay": "1h"})
    assert delayed.status_code == 303
    later = RUN_URL.match(delayed.headers["location"])
    assert later and client.runs.retrieve(later.group(1)).status == "DELAYED"
    client.runs.cancel(later.group(1))

    page = dashboard.get(f"{TASKS}/ship").text
    assert f'href="{ENV}/runs/{found.group(1)}"' in page and f'href="{ENV}/runs/{later.group(1)}"' in page
    assert page.index(later.group(1)) < page.index(found.group(1))  # newest first


def test_a_mistake_in_the_test_form_shows_it_again_with_the_reason(
    dashboard: httpx.Client,
    http: httpx.Client,
) -> None:
    tag = f"bad-{uuid.uuid4().hex[:8]}"
    base = {"csrf_token": csrf_of(dashboard), "tags": tag}

    not_json = dashboard.post(f"{TASKS}/ship", data={**base, "payload": '{"order_id": "A", quantity: 1}'})
    assert not_json.status_code == 422
    assert 'role="alert">payload: not valid JSON: Expecting property name enclosed in double quotes' in not_json.text
    assert "(line 1, column 19)" in not_json.text
    assert textarea(not_json.text, "payload") == '{"order_id": "A", quantity: 1}'  # kept as typed
    assert 'value="' + tag + '"' in not_json.text and 'aria-invalid="true"' in not_json.text

    shipment = {"order_id": "A", "quantity": 0, "address": {"city": "Oslo", "postcode": "0150"}}
    schema = dashboard.post(f"{TASKS}/ship", data={**base, "payload": json.dumps(shipment)})
    assert schema.status_code == 422
    assert "payload.quantity: 0 is less than or equal to the minimum of 0 (task &#39;ship&#39;)" in schema.text
    assert json.loads(textarea(schema.text, "payload")) == shipment

    nested = {**shipment, "quantity": 1, "address": {"city": "Oslo"}}
    missing = dashboard.post(f"{TASKS}/ship", data={**base, "payload": json.dumps(nested)})
    assert missing.status_code == 422 and "payload.address: &#39;postcode&#39; is a required property" in missing.text

    delay = dashboard.post(f"{TASKS}/ship", data={**base, "payload": json.dumps(nested), "delay": "soon"})
    assert delay.status_code == 422 and "delay: &#39;soon&#39; is not a duration" in delay.text
    machine = dashboard.post(f"{TASKS}/echo", data={**base, "payload": "{}", "machine": "huge"})
    assert machine.status_code == 422 and "machine: unknown machine &#39;huge&#39;" in machine.text
    empty = dashboard.post(f"{TASKS}/echo", data={**base, "payload": "  "})
    assert empty.status_code == 422 and "payload: empty" in empty.text

    assert http.get("/api/v1/runs", params={"tag": tag}).json()["data"] == []  # nothing was triggered


def test_dashboard_actions_without_the_csrf_token_are_refused(
    dashboard: httpx.Client,
    http: httpx.Client,
) -> None:
    tag = f"csrf-{uuid.uuid4().hex[:8]}"
    refused = dashboard.post(f"{TASKS}/echo", data={"payload": "{}", "tags": tag})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    wrong = dashboard.post(f"{TASKS}/echo", data={"payload": "{}", "tags": tag, "csrf_token": "0" * 64})
    assert wrong.status_code == 403
    assert http.get("/api/v1/runs", params={"tag": tag}).json()["data"] == []

    token = http.post("/api/v1/waitpoints/tokens", json={"tags": [tag]}).json()
    assert dashboard.post(f"{TOKENS}/{token['id']}/complete", data={"data": "{}"}).status_code == 403
    assert http.get(f"/api/v1/waitpoints/tokens/{token['id']}").json()["status"] == "WAITING"
    with httpx.Client(base_url=str(dashboard.base_url)) as stranger:  # no session at all
        assert stranger.post(f"{TOKENS}/{token['id']}/complete", data={"data": "{}"}).status_code == 401


def queue_row(page: str, queue: str) -> str:
    rows = [row for row in re.findall(r"<tr[ >].*?</tr>", page, re.DOTALL) if 'data-label="Queue"' in row]
    found = [row for row in rows if cell(row, "Queue").split(" ")[0] == queue]
    assert found, f"no row of queue {queue!r}"
    return found[0]


def _queue_numbers(page: str, queue: str) -> tuple[int, int, str]:
    row = queue_row(page, queue)
    return int(cell(row, "Executing").replace(",", "")), int(cell(row, "Queued").replace(",", "")), cell(row, "Limit")


def test_the_queues_page_shows_executing_and_queued_runs_and_limits(
    dashboard: httpx.Client,
    client: Client,
) -> None:
    page = dashboard.get(QUEUES)
    assert page.status_code == 200
    _, queued_before, limit = _queue_numbers(page.text, "task/never-runs")
    assert limit.startswith("0")
    stuck = [client.trigger("never-runs", {}).id for _ in range(2)]  # its queue's limit is 0
    sleeper = client.trigger("sleepy", {"seconds": 30}).id
    try:
        assert_eventually(lambda: client.runs.retrieve(sleeper).status == "EXECUTING", timeout=30, what="sleepy")
        page = dashboard.get(QUEUES)
        executing, queued, limit = _queue_numbers(page.text, "task/never-runs")
        assert (executing, queued) == (0, queued_before + 2)
        assert "At limit" in queue_row(page.text, "task/never-runs")
        executing, _, limit = _queue_numbers(page.text, "task/sleepy")
        assert executing >= 1 and limit == "none (the environment's 100)"
        assert "sleepy" in cell(queue_row(page.text, "task/sleepy"), "Tasks")
        assert re.search(r"<b>[1-9]\d*</b> executing of a limit of <b>100</b>", page.text)
        assert 'hx-get="/projects/default/env/dev/queues"' in page.text  # refreshes itself
    finally:
        for run_id in [*stuck, sleeper]:
            client.runs.cancel(run_id)
    page = dashboard.get(QUEUES)
    assert _queue_numbers(page.text, "task/never-runs")[1] == queued_before


def _waiting_token(http: httpx.Client, tag: str) -> dict[str, Any]:
    def made() -> dict[str, Any]:
        tokens = http.get("/api/v1/waitpoints/tokens", params={"tag": tag}).json()["data"]
        assert tokens, "no token yet"
        return tokens[0]  # type: ignore[no-any-return]

    return assert_eventually(made, timeout=30, what="the run to make its token")  # type: ignore[no-any-return]


def test_the_tokens_page_lists_filters_and_completes_a_token(
    dashboard: httpx.Client,
    http: httpx.Client,
    client: Client,
) -> None:
    tag = f"tok-{uuid.uuid4().hex[:8]}"
    run_id = client.trigger("token-waiter", {"tag": tag, "timeout": "1h"}).id
    token = _waiting_token(http, tag)
    assert_eventually(lambda: client.runs.retrieve(run_id).status == "WAITING", timeout=30, what="the run to wait")

    page = dashboard.get(TOKENS, params={"tag": tag})
    assert page.status_code == 200
    row = row_of(page.text, f'id="{token["id"]}"')
    assert cell(row, "Status") == "Waiting" and cell(row, "Tags") == tag
    assert cell(row, "Timeout") in ("in 59m", "in 1h")
    assert f'href="{ENV}/runs/{run_id}"' in row and "waiting" in cell(row, "Run")
    assert "Complete this token" in page.text
    assert "No tokens match" in dashboard.get(TOKENS, params={"tag": tag, "status": "COMPLETED"}).text

    url = f"{TOKENS}/{token['id']}/complete"
    csrf = csrf_of(dashboard)
    bad = dashboard.post(url, data={"csrf_token": csrf, "data": "{approved: true}", "tag": tag})
    assert bad.status_code == 422
    assert "data: not valid JSON: Expecting property name enclosed in double quotes (line 1, column 2)" in bad.text
    assert textarea(bad.text, "data") == "{approved: true}" and '<details class="complete" open>' in bad.text
    assert http.get(f"/api/v1/waitpoints/tokens/{token['id']}").json()["status"] == "WAITING"

    done = dashboard.post(url, data={"csrf_token": csrf, "data": '{"approved": true}', "tag": tag})
    assert done.status_code == 303
    assert done.headers["location"] == f"{TOKENS}?tag={tag}&completed={token['id']}"
    shown = dashboard.get(done.headers["location"])
    assert f'Token <span class="mono">{token["id"]}</span> completed' in shown.text
    assert cell(row_of(shown.text, f'id="{token["id"]}"'), "Status") == "Completed"
    assert "&#34;approved&#34;: true" in shown.text  # its output
    run = wait_finished(client, run_id)
    assert run.output == {"ok": True, "output": {"approved": True}, "error": None}

    twice = dashboard.post(url, data={"csrf_token": csrf, "data": "{}", "tag": tag})
    assert twice.status_code == 409 and "cannot be completed: it was already completed" in twice.text
    missing = dashboard.post(f"{TOKENS}/waitpoint_nope/complete", data={"csrf_token": csrf, "data": "{}"})
    assert missing.status_code == 404 and "not found" in missing.text
    # A link cannot make the page say that a token it names was completed when it was not.
    made_up = dashboard.get(f"{TOKENS}?completed=waitpoint_made_up")
    assert made_up.status_code == 200 and "completed; the runs waiting" not in made_up.text


def test_the_tokens_page_pages_by_cursor(dashboard: httpx.Client, http: httpx.Client) -> None:
    tag = f"many-{uuid.uuid4().hex[:8]}"
    ids = [http.post("/api/v1/waitpoints/tokens", json={"tags": [tag]}).json()["id"] for _ in range(51)]
    first = dashboard.get(TOKENS, params={"tag": tag, "status": "WAITING"})
    shown = re.findall(r'<tr id="(waitpoint_[0-9a-z]+)"', first.text)
    assert shown == list(reversed(ids))[:50]
    older = re.search(r'href="([^"]+cursor=[^"]+)" rel="next"', first.text)
    assert older, "no link to the older tokens"
    second = dashboard.get(html.unescape(older.group(1)))
    assert re.findall(r'<tr id="(waitpoint_[0-9a-z]+)"', second.text) == [ids[0]]
    assert "← Newest" in second.text and 'rel="next"' not in second.text
