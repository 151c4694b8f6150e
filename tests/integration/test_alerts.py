"""Alerts at the HTTP level against a real server and a real webhook receiver on loopback: a run that
fails for good is POSTed once per webhook, signed, retried after a failed try with the same bytes,
and logged; what did not fail, and disabled webhooks, send nothing."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator

import httpx
import pytest

from hightide import Client, NotFoundError, ValidationError, alerts
from tests.integration.conftest import CLI, Stack
from tests.support import assert_eventually, free_port
from tests.webhooks import webhook_receiver

ONE_TRY = {"max_attempts": 1}


@pytest.fixture
def staging(stack: Stack) -> Iterator[Client]:
    """A blocking client of the staging environment, where the tests drive the worker by hand."""
    with Client(api_url=stack.url, secret_key=stack.key_for("staging")) as client:
        yield client


def _finish(http: httpx.Client, task_id: str, outcomes: list[bool]) -> list[str]:
    """Trigger one run of ``task_id`` per outcome, claim them and report each: ok or failed."""
    manifest = {"tasks": [{"id": task_id, "retry": ONE_TRY}]}
    version = http.post("/api/v1/worker/register", json={"manifest": manifest}).json()["version_id"]
    ids = [
        http.post(f"/api/v1/tasks/{task_id}/trigger", json={"payload": {"n": n}}).json()["id"]
        for n in range(len(outcomes))
    ]
    claimed: dict[str, dict] = {}
    while len(claimed) < len(ids):
        body = {"worker_id": "wkr_alerts", "version_id": version, "max_runs": len(ids), "wait": 5}
        claimed.update({e["run_id"]: e for e in http.post("/api/v1/worker/claim", json=body).json()["runs"]})
    results = []
    for run_id, ok in zip(ids, outcomes, strict=True):
        e = claimed[run_id]
        result = {"run_id": run_id, "attempt": e["attempt"], "ok": ok, "execution": e["execution"]}
        if ok:
            result["output"] = "fine"
        else:
            result["error"] = {"name": "ValueError", "message": f"card declined for {run_id}"}
        results.append(result)
    replies = http.post("/api/v1/worker/complete", json={"worker_id": "wkr_alerts", "results": results}).json()
    assert all(r["accepted"] for r in replies["results"]), replies
    return ids


def test_a_failed_run_is_posted_signed_retried_with_the_same_bytes_and_logged(stack: Stack, staging: Client) -> None:
    task_id = f"charge-{uuid.uuid4().hex[:8]}"
    with webhook_receiver() as hook, webhook_receiver() as off, stack.hand_driven() as http:
        alert = staging.alerts.create(url=hook.url, events=["run.failed"], description="on-call")
        disabled = staging.alerts.create(url=off.url, events=["run.failed"], enabled=False)
        assert alert.secret and alert.secret.startswith("whsec_") and alert.enabled
        hook.statuses = [500]  # the first try fails: tried again a moment later
        ok_id, failed_id = _finish(http, task_id, [True, False])
        http.post(f"/api/v1/tasks/{task_id}/trigger", json={"payload": {}})  # queued, then cancelled: no alert
        [queued] = [r for r in staging.runs.list(task=task_id) if r.status == "QUEUED"]
        staging.runs.cancel(queued.id)

        def two_tries() -> list:
            assert len(hook.requests) >= 2, hook.requests
            return hook.requests

        first, second = assert_eventually(two_tries, timeout=20, what="a failed try and its retry")[:2]
        for request in (first, second):
            assert request.path == "/hooks/hightide" and request.headers["content-type"] == "application/json"
            assert alerts.verify_signature(request.body, request.headers["hightide-signature"], alert.secret)
            assert not alerts.verify_signature(request.body, request.headers["hightide-signature"], "whsec_wrong")
            assert not alerts.verify_signature(request.body + b" ", request.headers["hightide-signature"], alert.secret)
        assert first.body == second.body and first.headers["hightide-delivery"] == second.headers["hightide-delivery"]
        event = json.loads(first.body)
        assert (event["type"], first.headers["hightide-event"]) == ("run.failed", "run.failed")
        assert event["id"].startswith("evt_") and event["environment"]["slug"] == "staging"
        run = event["data"]["run"]
        assert (run["id"], run["task_id"], run["status"]) == (failed_id, task_id, "FAILED")
        assert run["error"]["message"] == f"card declined for {failed_id}"

        def delivered() -> object:
            [delivery] = staging.alerts.deliveries(alert.id)
            assert delivery.status == "DELIVERED", delivery
            return delivery

        delivery = assert_eventually(delivered, what="the delivery logged as delivered")
        assert (delivery.run_id, delivery.event, delivery.tries) == (failed_id, "run.failed", 2)
        assert [t.status_code for t in delivery.log] == [500, 200]
        assert "HTTP 500" in (delivery.log[0].error or "") and delivery.log[1].error is None
        assert staging.alerts.delivery(alert.id, delivery.id).body == event

        # Sent again on request, byte for byte; a test event on request too.
        staging.alerts.redeliver(alert.id, delivery.id)
        staging.alerts.test(alert.id)
        assert_eventually(lambda: len(hook.requests) == 4, what="the redelivery and the test event")
        assert hook.requests[2].body == first.body
        test_event = json.loads(hook.requests[3].body)
        assert test_event["type"] == "alert.test" and test_event["data"]["message"]
        # Nothing else was sent: the completed run, the cancelled one and the disabled webhook.
        assert ok_id not in b"".join(r.body for r in hook.requests).decode()
        assert off.requests == [] and staging.alerts.deliveries(disabled.id) == []


def test_an_unreachable_webhook_is_tried_again_later_and_the_log_says_why(staging: Client, stack: Stack) -> None:
    task_id = f"flaky-{uuid.uuid4().hex[:8]}"
    alert = staging.alerts.create(url=f"http://127.0.0.1:{free_port()}/gone", events=["run.failed"])
    with stack.hand_driven() as http:
        [failed_id] = _finish(http, task_id, [False])

    def tried() -> object:
        [delivery] = staging.alerts.deliveries(alert.id)
        assert delivery.tries >= 1, delivery
        return delivery

    delivery = assert_eventually(tried, what="a try that found nobody")
    assert delivery.status == "PENDING" and delivery.run_id == failed_id and delivery.next_try_at is not None
    assert delivery.log[0].status_code is None and "Connect" in (delivery.log[0].error or "")
    staging.alerts.delete(alert.id)


def test_webhooks_are_listed_changed_and_deleted_and_bad_input_is_refused(staging: Client, client: Client) -> None:
    alert = staging.alerts.create(url="https://example.com/hooks/a", events=["run.failed", "run.failed"])
    assert alert.events == ["run.failed"]
    # Another environment's key neither sees nor changes it.
    assert alert.id not in {a.id for a in client.alerts.list()}
    for other_env in (lambda: client.alerts.retrieve(alert.id), lambda: client.alerts.test(alert.id)):
        with pytest.raises(NotFoundError):
            other_env()
    listed = {a.id: a for a in staging.alerts.list()}
    assert alert.id in listed and listed[alert.id].secret is None  # listings leave secrets out
    assert staging.alerts.retrieve(alert.id).secret == alert.secret

    changed = staging.alerts.update(alert.id, url="https://example.com/hooks/b", enabled=False)
    assert (changed.url, changed.enabled, changed.secret) == ("https://example.com/hooks/b", False, None)
    rotated = staging.alerts.update(alert.id, rotate_secret=True)
    assert rotated.secret and rotated.secret != alert.secret
    assert staging.alerts.retrieve(alert.id).secret == rotated.secret

    for bad, says in [
        ({"url": "ftp://example.com/x", "events": ["run.failed"]}, "http(s) URL"),
        ({"url": "https://example.com/x", "events": ["deployment.promoted"]}, "comes with deploys"),
        ({"url": "https://example.com/x", "events": ["run.completed"]}, "unknown event 'run.completed'"),
    ]:
        with pytest.raises(ValidationError) as refused:
            staging.alerts.create(**bad)
        assert says in str(refused.value)
    with pytest.raises(ValidationError, match="status"):
        staging.alerts.deliveries(alert.id, status="LOST")

    staging.alerts.delete(alert.id)
    assert alert.id not in {a.id for a in staging.alerts.list()}
    with pytest.raises(Exception, match="no alert") as gone:
        staging.alerts.retrieve(alert.id)
    assert type(gone.value).__name__ == "NotFoundError"


def test_each_delivery_is_sent_once_by_the_stack(staging: Client, stack: Stack) -> None:
    """Twenty runs failing in one report: twenty deliveries, each sent once (the leases hold)."""
    task_id = f"many-{uuid.uuid4().hex[:8]}"
    with webhook_receiver() as hook, stack.hand_driven() as http:
        alert = staging.alerts.create(url=hook.url, events=["run.failed"])
        ids = _finish(http, task_id, [False] * 20)
        assert_eventually(lambda: len(hook.requests) >= 20, timeout=20, what="twenty deliveries")
        sent = [json.loads(r.body)["data"]["run"]["id"] for r in hook.requests]
        assert sorted(sent) == sorted(ids)
        staging.alerts.delete(alert.id)


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)  # the shell speaks to the API alike on both
def test_the_shell_creates_tests_lists_disables_and_deletes_a_webhook(stack: Stack) -> None:
    env = {**os.environ, "HIGHTIDE_API_URL": stack.url, "HIGHTIDE_SECRET_KEY": stack.key_for("staging")}

    def cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run([*CLI, "alerts", *args], capture_output=True, text=True, env=env, timeout=60)
        assert (out.returncode == 0) == ok, out.stdout + out.stderr
        return out

    with webhook_receiver() as hook:
        made = cli("create", "--url", hook.url, "--description", "pager").stdout
        alert_id = made.split()[0]
        assert alert_id.startswith("alert_") and "signing secret: whsec_" in made and "run.failed" in made
        assert alert_id in cli("list").stdout
        sent = json.loads(cli("test", alert_id, "--json").stdout)
        assert sent["event"] == "alert.test"
        assert_eventually(lambda: len(hook.requests) == 1, what="the test event")

        def delivered() -> str:  # a status in any case
            table = cli("deliveries", alert_id, "--status", "delivered").stdout
            assert sent["id"] in table and "alert.test" in table, table
            return table

        assert "200" in assert_eventually(delivered, what="the test delivery logged")
        assert "disabled" in cli("disable", alert_id).stdout
        assert json.loads(cli("get", alert_id, "--json").stdout)["enabled"] is False
        refused = cli("create", "--url", hook.url, "--event", "deployment.promoted", ok=False)
        assert "comes with deploys" in refused.stdout + refused.stderr and "Traceback" not in refused.stderr
        assert "deleted" in cli("delete", alert_id).stdout
        assert alert_id not in cli("list").stdout
