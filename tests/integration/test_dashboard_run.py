"""The dashboard's Run page over HTTP against a real ``hightide server`` and worker: what it shows,
its 404s, its actions (CSRF, Cancel, Replay with an edited payload, Reset key) and its live stream."""

from __future__ import annotations

import html
import re
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from hightide import Client
from hightide.engine.environments import find_environment
from hightide.engine.options import TriggerSpec
from hightide.engine.runs import RunEngine
from hightide.store import open_store
from tests.integration.conftest import Stack
from tests.integration.test_dashboard import browser, csrf_of, new_link
from tests.support import assert_eventually, wait_finished

RUNS = "/projects/default/env/dev/runs"


@pytest.fixture
def signed_in(stack: Stack) -> Iterator[httpx.Client]:
    with browser(stack) as client:
        assert client.get(new_link(stack)).status_code == 303
        yield client


def text_of(page: str) -> str:
    """The page's text, roughly as a person reads it."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def span_url(page: str, name: str) -> str:
    """The fragment URL of the waterfall row named ``name``."""
    for row in re.findall(r'<a class="wf-row[^"]*"[^>]*>.*?</a>', page, re.S):
        if f'<span class="wf-label">{html.escape(name)}</span>' in row:
            found = re.search(r'hx-get="([^"]+)"', row)
            assert found
            return html.unescape(found.group(1))
    raise AssertionError(f"no row {name!r} in the waterfall")


def test_the_page_shows_everything_a_run_has(signed_in: httpx.Client, client: Client, http: httpx.Client) -> None:
    key = f"key-{uuid.uuid4().hex[:8]}"
    parent = client.trigger("traced-parent", {"order": 7}, tags=["shop", "vip"], idempotency_key=key).id
    run = wait_finished(client, parent, timeout=60)
    assert run.status == "COMPLETED", run
    [child] = [r["id"] for r in http.get("/api/v1/runs", params={"parent": parent}).json()["data"]]

    page = signed_in.get(f"{RUNS}/{parent}")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    shown = text_of(page.text)
    for expected in (
        "traced-parent",
        parent,
        "Completed",
        '"order": 7',  # the payload, pretty
        '"total":',  # the output
        "#1",  # its attempt
        "shop",
        "vip",
        key,
        "Reset key",
        "Trigger and wait traced-child",  # its waits
        "Wait for ",
        "Replay",
        "Details",
        "small-1x · 0.5 vCPU, 0.5 GB",  # its machine
    ):
        assert expected in shown, expected
    assert "Cancel run" not in shown  # finished: nothing to cancel
    assert f'href="{RUNS}/{child}"' in page.text  # the child, linked
    assert "sse-connect" not in page.text  # finished: not live
    for name in ("traced-parent", "attempt 1", "prepare", "step charge", "traced-child"):
        assert f'<span class="wf-label">{name}</span>' in page.text, name
    assert re.search(r'<rect class="wf-bar" x="[\d.]+" y="1" width="[\d.]+" height="10"/>', page.text)
    assert "style=" not in page.text  # the Content Security Policy forbids inline styles

    # A span's details: its attributes and the logs written inside it.
    details = signed_in.get(span_url(page.text, "prepare"))
    assert details.status_code == 200
    detail_text = text_of(details.text)
    assert "prepared" in detail_text and "order" in detail_text
    assert "inside prepare" in detail_text and "finished" not in detail_text
    # The same, as a page of its own (a shared link, or no JavaScript).
    span_id = span_url(page.text, "prepare").rsplit("/", 1)[1]
    alone = signed_in.get(f"{RUNS}/{parent}", params={"span": span_id})
    assert "inside prepare" in text_of(alone.text)
    assert signed_in.get(f"{RUNS}/{parent}/spans/nope").status_code == 404

    # The child's page links back to its parent.
    child_page = signed_in.get(f"{RUNS}/{child}")
    assert child_page.status_code == 200 and f'href="{RUNS}/{parent}"' in child_page.text
    assert "traced-child" in text_of(child_page.text)


def test_a_failed_run_shows_its_error_and_stack(signed_in: httpx.Client, client: Client) -> None:
    failed = wait_finished(client, client.trigger("always-fails", {}).id)
    shown = text_of(signed_in.get(f"{RUNS}/{failed.id}").text)
    assert "Failed" in shown and "ValueError: broken" in shown
    assert "Stack trace" in shown and "Traceback" in shown
    assert "#2" in shown  # both attempts, each with its error


def test_a_later_span_shows_its_logs_after_more_than_a_thousand_of_an_earlier_one(
    signed_in: httpx.Client, client: Client
) -> None:
    run_id = client.trigger("traced-chatty", {"lines": 1200}).id
    assert wait_finished(client, run_id, timeout=60).output == "said"
    page = signed_in.get(f"{RUNS}/{run_id}").text
    second = text_of(signed_in.get(span_url(page, "second")).text)
    assert "said in the second span" in second and "of the first span" not in second
    first = text_of(signed_in.get(span_url(page, "first")).text)
    assert "line 0 of the first span" in first and "line 499 of the first span" in first
    assert "line 500 of the first span" not in first and "said in the second span" not in first  # the first 500
    # The attempt's span: its logs, the first 500 of them.
    attempt = text_of(signed_in.get(span_url(page, "attempt 1")).text)
    assert "line 0 of the first span" in attempt and "second span" not in attempt


def test_unknown_runs_and_runs_of_other_environments_are_not_found(
    stack: Stack, signed_in: httpx.Client, client: Client
) -> None:
    missing = signed_in.get(f"{RUNS}/run_0000000000000000000000")
    assert missing.status_code == 404 and "Not found" in missing.text and "<html" in missing.text
    store = open_store(stack.database_url)  # a run of prod, where no worker registered tasks
    try:
        engine = RunEngine(store)
        prod = find_environment(store, "prod")
        engine.triggering.register_version(prod, {"tasks": [{"id": "prod-only"}]})
        [(made, _)] = engine.triggering.trigger(prod, [TriggerSpec(task_id="prod-only")])
    finally:
        store.close()
    elsewhere = made.id
    for path in ("", "/live", "/spans/x"):
        assert signed_in.get(f"{RUNS}/{elsewhere}{path}").status_code == 404, path
    assert signed_in.get(f"/projects/default/env/prod/runs/{elsewhere}").status_code == 200
    token = csrf_of(signed_in)
    assert signed_in.post(f"{RUNS}/{elsewhere}/cancel", data={"csrf_token": token}).status_code == 404


def test_the_actions_are_refused_without_the_csrf_token(signed_in: httpx.Client, client: Client) -> None:
    run_id = client.trigger("sleepy", {"seconds": 30}, idempotency_key=uuid.uuid4().hex).id
    try:
        for action, data in (("cancel", {}), ("replay", {"payload": "{}"}), ("reset-key", {})):
            refused = signed_in.post(f"{RUNS}/{run_id}/{action}", data=data)
            assert refused.status_code == 403, action
            assert refused.json()["error"]["code"] == "permission_denied"
            wrong = signed_in.post(f"{RUNS}/{run_id}/{action}", data={**data, "csrf_token": "0" * 64})
            assert wrong.status_code == 403, action
        run = client.runs.retrieve(run_id)
        assert not run.is_finished and run.idempotency_key is not None
    finally:
        client.runs.cancel(run_id)


def test_cancel_stops_an_unfinished_run(signed_in: httpx.Client, client: Client) -> None:
    run_id = client.trigger("sleepy", {"seconds": 30}).id
    page = signed_in.get(f"{RUNS}/{run_id}")
    assert "Cancel run" in page.text and f'sse-connect="{RUNS}/{run_id}/live?seen=' in page.text
    token = csrf_of(signed_in)
    done = signed_in.post(f"{RUNS}/{run_id}/cancel", data={"csrf_token": token})
    assert done.status_code == 303 and done.headers["location"] == f"{RUNS}/{run_id}?flash=cancelled"
    assert client.runs.retrieve(run_id).status == "CANCELED"
    shown = text_of(signed_in.get(done.headers["location"]).text)
    assert "Run cancelled" in shown and "Canceled" in shown and "Cancel run" not in shown
    again = signed_in.post(f"{RUNS}/{run_id}/cancel", data={"csrf_token": token})
    assert again.headers["location"] == f"{RUNS}/{run_id}?flash=cancel-finished"
    assert "had already finished" in text_of(signed_in.get(again.headers["location"]).text)


def test_replay_with_an_edited_payload_opens_the_new_run(
    signed_in: httpx.Client, client: Client, http: httpx.Client
) -> None:
    tag = f"replayed-{uuid.uuid4().hex[:6]}"
    original = wait_finished(client, client.trigger("echo", {"n": 1}, tags=[tag]).id)
    page = signed_in.get(f"{RUNS}/{original.id}")
    textarea = re.search(r'<textarea[^>]*name="payload"[^>]*>(.*?)</textarea>', page.text, re.S)
    assert textarea and html.unescape(textarea.group(1)) == '{\n  "n": 1\n}'  # prefilled
    token = csrf_of(signed_in)

    bad = signed_in.post(f"{RUNS}/{original.id}/replay", data={"csrf_token": token, "payload": '{"n": 2,'})
    assert bad.status_code == 422
    assert "The payload is not valid JSON" in text_of(bad.text)
    kept = re.search(r'<textarea[^>]*name="payload"[^>]*>(.*?)</textarea>', bad.text, re.S)
    assert kept and html.unescape(kept.group(1)) == '{"n": 2,'  # the input is kept
    assert len(http.get("/api/v1/runs", params={"tag": tag}).json()["data"]) == 1  # nothing was triggered

    good = signed_in.post(f"{RUNS}/{original.id}/replay", data={"csrf_token": token, "payload": '{"n": 2}'})
    assert good.status_code == 303
    new_id = re.fullmatch(rf"{RUNS}/(run_[0-9a-z]+)\?flash=replayed&from={original.id}", good.headers["location"])
    assert new_id, good.headers["location"]
    replayed = wait_finished(client, new_id.group(1))
    assert replayed.payload == {"n": 2} and replayed.tags == [tag] and replayed.id != original.id
    shown = text_of(signed_in.get(good.headers["location"]).text)
    assert "Replay started" in shown and original.id in shown

    # An emptied editor is the run's own payload, not JSON null.
    blank = signed_in.post(f"{RUNS}/{original.id}/replay", data={"csrf_token": token, "payload": " \n"})
    assert blank.status_code == 303
    blank_id = re.fullmatch(rf"{RUNS}/(run_[0-9a-z]+)\?flash=replayed&from={original.id}", blank.headers["location"])
    assert blank_id, blank.headers["location"]
    assert wait_finished(client, blank_id.group(1)).payload == {"n": 1}

    # The API's replay still takes the run's own payload.
    again = client.runs.replay(original.id)
    assert wait_finished(client, again.id).payload == {"n": 1}


def test_reset_key_forgets_the_idempotency_key(signed_in: httpx.Client, client: Client) -> None:
    key = f"reset-{uuid.uuid4().hex[:8]}"
    first = client.trigger("echo", {}, idempotency_key=key)
    assert client.trigger("echo", {}, idempotency_key=key).id == first.id  # the key holds
    token = csrf_of(signed_in)
    done = signed_in.post(f"{RUNS}/{first.id}/reset-key", data={"csrf_token": token})
    assert done.status_code == 303 and done.headers["location"] == f"{RUNS}/{first.id}?flash=key-reset"
    assert "Idempotency key reset" in text_of(signed_in.get(done.headers["location"]).text)
    assert client.trigger("echo", {}, idempotency_key=key).id != first.id  # forgotten
    again = signed_in.post(f"{RUNS}/{first.id}/reset-key", data={"csrf_token": token})
    assert again.headers["location"] == f"{RUNS}/{first.id}?flash=key-gone"


def events(stream: httpx.Response) -> Iterator[tuple[str, str]]:
    """(name, data) of each event of a Server-Sent Events response."""
    name, data = "message", []
    for line in stream.iter_lines():
        if line == "":
            if data:
                yield name, "\n".join(data)
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))


def test_the_live_stream_sends_parts_as_they_change_and_ends_at_the_finish(
    stack: Stack, signed_in: httpx.Client, client: Client, http: httpx.Client
) -> None:
    run_id = client.trigger("sleepy", {"seconds": 4}).id
    with browser(stack) as anonymous:
        assert anonymous.get(f"{RUNS}/{run_id}/live").status_code == 401
    started = time.monotonic()
    seen: dict[str, list[str]] = {}
    order: list[tuple[float, str]] = []
    with signed_in.stream("GET", f"{RUNS}/{run_id}/live") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        changed = False
        for name, data in events(stream):
            seen.setdefault(name, []).append(data)
            order.append((round(time.monotonic() - started, 1), name))
            if not changed and "trace" in seen:  # every part came first; now change one
                marker = f"progress-{uuid.uuid4().hex[:6]}"
                put = http.put(f"/api/v1/runs/{run_id}/metadata", json={"metadata": {"step": marker}})
                assert put.status_code == 200, put.text
                changed = True
            if name == "end":
                break
    assert time.monotonic() - started < 30
    assert {"status", "actions", "overview", "tags", "metadata", "key", "result", "trace"} <= set(seen)
    assert any(marker in part for part in seen["metadata"][1:]), (order, seen["metadata"])  # the change, re-rendered
    assert "Completed" in seen["status"][-1] and "woke" in seen["result"][-1]  # the final state, then the end
    assert "Cancel run" in seen["actions"][0] and "Cancel run" not in seen["actions"][-1]
    # Only the finish redraws the actions (a redraw would close a Cancel dialog open on the page).
    assert len(seen["actions"]) == 2, seen["actions"]
    assert "<section" in seen["metadata"][0] and "\n" in seen["trace"][0]  # HTML, several lines

    # A finished run's stream: its parts and the end at once.
    with signed_in.stream("GET", f"{RUNS}/{run_id}/live") as stream:
        names = [name for name, _ in events(stream)]
    assert names[-1] == "end" and "status" in names
    assert_eventually(lambda: client.runs.retrieve(run_id).is_finished, timeout=5)
