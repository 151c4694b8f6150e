"""The Runs page against a real ``hightide server`` (SQLite and PostgreSQL): its filters, the run id
search, the live stream of its rows, and cancelling or replaying the runs ticked on it."""

from __future__ import annotations

import html
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from hightide import Client
from tests.integration.conftest import Stack
from tests.integration.test_dashboard import CSRF, RUNS, browser, new_member_beside
from tests.integration.test_dashboard import signed_in as signed_in
from tests.support import assert_eventually, wait_finished

RUN_ID = re.compile(r'id="run-(run_[0-9a-z]+)"')
FLASH = re.compile(r'<p class="alert (ok|error)" role="(?:alert|status)">([^<]*)</p>')


def _tag() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def rows(page: httpx.Response) -> list[str]:
    assert page.status_code == 200, page.text[:500]
    return RUN_ID.findall(page.text)


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found, "no CSRF token on the page"
    return found.group(1)


def flash_of(page: httpx.Response) -> tuple[str, str] | None:
    found = FLASH.search(page.text)
    return (found.group(1), html.unescape(found.group(2))) if found else None


def test_filters_by_version_and_period_and_the_run_id_search(signed_in: httpx.Client, client: Client) -> None:
    tag = _tag()
    done = wait_finished(client, client.trigger("echo", {"n": 1}, tags=[tag]).id)
    assert done.version
    later = client.trigger("echo", {"n": 2}, tags=[tag], delay="1h").id  # delayed: no version yet

    page = signed_in.get(RUNS, params={"tag": tag})
    assert rows(page) == [later, done.id]
    assert f'href="{RUNS}/{done.id}"' in page.text  # each row opens its run

    assert rows(signed_in.get(RUNS, params={"tag": tag, "version": done.version})) == [done.id]
    none = signed_in.get(RUNS, params={"tag": tag, "version": "no-such-version"})
    assert rows(none) == [] and "No runs match these filters" in none.text

    today = datetime.now(UTC).date()
    assert rows(signed_in.get(RUNS, params={"tag": tag, "period": "1h"})) == [later, done.id]
    assert rows(signed_in.get(RUNS, params={"tag": tag, "from": today.isoformat(), "to": today.isoformat()})) == [
        later,
        done.id,
    ]
    yesterday = (today - timedelta(days=1)).isoformat()
    assert rows(signed_in.get(RUNS, params={"tag": tag, "to": yesterday})) == []
    kept = signed_in.get(RUNS, params={"tag": tag, "period": "7d", "version": done.version})
    assert 'value="7d" selected' in kept.text and f'value="{done.version}"' in kept.text  # the form shows them
    bad = signed_in.get(RUNS, params={"from": "yesterday"})
    assert bad.status_code == 422 and "from: expected a date like 2026-12-01" in bad.text and "<html" in bad.text
    assert "period: expected one of 1h, 24h, 7d, 30d" in signed_in.get(RUNS, params={"period": "1y"}).text

    found = signed_in.get(RUNS, params={"run": f"  {done.id} "})
    assert found.status_code == 303 and found.headers["location"] == f"{RUNS}/{done.id}"
    missing = signed_in.get(RUNS, params={"run": "run_doesnotexist"})
    assert missing.status_code == 404
    assert flash_of(missing) == ("error", "There is no run 'run_doesnotexist' in default / dev.")
    assert 'value="run_doesnotexist"' in missing.text  # the search keeps what was typed


class Events:
    """The events of one SSE response, read as they come (with a deadline, never a sleep)."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.iter_lines()

    def next_event(self, deadline: float) -> tuple[str, str]:
        name, data = "message", []
        while time.monotonic() < deadline:
            line = next(self._lines)
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif line == "" and data:
                return name, "\n".join(data)
        raise AssertionError("no event in time")

    def until(self, name: str, needle: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            got, data = self.next_event(deadline)
            if got == name and needle in data:
                return data


@pytest.fixture
def stream_url(signed_in: httpx.Client) -> Iterator[tuple[str, str]]:
    """A tag of new runs, and the live stream URL the page of that tag connects to."""
    tag = _tag()
    page = signed_in.get(RUNS, params={"tag": tag})
    found = re.search(r'sse-connect="([^"]+)"', page.text)
    assert found, "the page connects no stream"
    yield tag, html.unescape(found.group(1))


def test_the_list_stream_inserts_new_runs_and_re_renders_changed_rows(
    stack: Stack, signed_in: httpx.Client, client: Client, stream_url: tuple[str, str]
) -> None:
    tag, url = stream_url
    assert url.startswith(f"{RUNS}?tag={tag}&at=")
    with browser(stack) as anonymous:  # a stream needs a session: 401, not a redirect
        refused = anonymous.get(url, headers={"Accept": "text/event-stream"})
        assert refused.status_code == 401 and refused.headers["hx-redirect"] == "/login"
    headers = {"Accept": "text/event-stream"}
    with signed_in.stream("GET", url, headers=headers, timeout=httpx.Timeout(30, read=25)) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        events = Events(answer)
        first = client.trigger("echo", {}, tags=[tag], delay="1h").id
        listed = events.until("list", first)  # the page had no rows: the whole list, with the new one
        assert 'id="runs-list"' in listed and 'hx-swap-oob="true"' in listed and 'name="csrf_token"' in listed
        second = client.trigger("echo", {}, tags=[tag], delay="1h").id
        inserted = events.until("insert", second)  # then new runs go on top
        assert 'hx-swap-oob="afterbegin:#runs-body"' in inserted and first not in inserted
        client.trigger("echo", {}, tags=["another-tag"], delay="1h")  # not these filters: nothing sent
        client.runs.cancel(first)
        row = events.until("row", "Canceled")
        assert f'<tr id="run-{first}"' in row and 'hx-swap-oob="true"' in row and "Canceled" in row
        assert "another-tag" not in row
        assert f'id="pick-{first}"' in row and "hx-preserve" in row  # a ticked box stays ticked


def test_a_status_filter_keeps_a_row_that_stops_matching_dimmed(
    stack: Stack, signed_in: httpx.Client, client: Client
) -> None:
    tag = _tag()
    run_id = client.trigger("echo", {}, tags=[tag], delay="1h").id
    page = signed_in.get(RUNS, params={"tag": tag, "status": "DELAYED"})
    assert rows(page) == [run_id]
    url = html.unescape(re.search(r'sse-connect="([^"]+)"', page.text).group(1))  # type: ignore[union-attr]
    with signed_in.stream("GET", url, headers={"Accept": "text/event-stream"}, timeout=30) as answer:
        events = Events(answer)
        client.runs.cancel(run_id)
        row = events.until("row", "Canceled")
        assert run_id in row and 'class="run unmatched"' in row and "leaves the list when you reload" in row
    assert rows(signed_in.get(RUNS, params={"tag": tag, "status": "DELAYED"})) == []


def strip_of(signed_in: httpx.Client, back: str = RUNS) -> httpx.Response:
    """The "Bulk actions" strip, as the page polls it."""
    answer = signed_in.get(f"{RUNS}/bulk-actions", params={"back": back})
    assert answer.status_code == 200, answer.text[:500]
    return answer


def job_text(signed_in: httpx.Client, bulk_id: str) -> str:
    """What the strip says of one bulk action, as a person reads it (tags dropped, spaces collapsed)."""
    found = re.search(
        rf'<li class="bulk-job[^"]*" id="bulk-{bulk_id}">(.*?)</li>\s*(?:<li class="bulk-job|</ul>)',
        strip_of(signed_in).text,
        re.S,
    )
    assert found, f"the strip does not show {bulk_id}"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))).split())


def newest_job(client: Client) -> str:
    return next(iter(client.runs.bulk.list())).id


def test_ticked_runs_are_cancelled_and_replayed_by_a_job_shown_in_the_strip(
    signed_in: httpx.Client, client: Client
) -> None:
    tag = _tag()
    finished = wait_finished(client, client.trigger("echo", {"n": 0}, tags=[tag]).id).id
    waiting = [client.trigger("echo", {"n": n}, tags=[tag], delay="1h").id for n in range(3)]
    filtered = f"{RUNS}?tag={tag}"
    page = signed_in.get(filtered)
    token = csrf_of(page)
    assert 'action="/projects/default/env/dev/runs/bulk-cancel"' in page.text
    assert "Cancel selected" in page.text and "Replay selected" in page.text

    refused = signed_in.post(f"{RUNS}/bulk-cancel", data={"run": waiting, "back": filtered})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    assert {client.runs.retrieve(i).status for i in waiting} == {"DELAYED"}  # nothing ran

    form = {"csrf_token": token, "back": filtered, "run": [*waiting, finished]}
    answer = signed_in.post(f"{RUNS}/bulk-cancel", data=form)
    assert answer.status_code == 303 and answer.headers["location"] == filtered
    after = signed_in.get(answer.headers["location"])
    assert flash_of(after) == ("ok", "Cancel of 4 runs started: its progress is under Bulk actions.")
    job = newest_job(client)
    assert f'id="bulk-{job}"' in after.text  # the page shows it at once
    assert_eventually(lambda: {client.runs.retrieve(i).status for i in waiting} == {"CANCELED"}, timeout=20)
    done = assert_eventually(lambda: "Completed" in (text := job_text(signed_in, job)) and text, timeout=20)
    assert "Cancel 4 runs ticked" in done and "4 of 4" in done and "3 cancelled" in done
    assert "1 already finished" in done and "0 failed" in done
    assert flash_of(signed_in.get(filtered)) is None  # shown once

    form = {"csrf_token": token, "back": filtered, "run": [*waiting[:2], "run_doesnotexist"]}
    answer = signed_in.post(f"{RUNS}/bulk-replay", data=form)
    assert answer.status_code == 303
    assert flash_of(signed_in.get(filtered)) == ("ok", "Replay of 3 runs started: its progress is under Bulk actions.")
    job = newest_job(client)
    done = assert_eventually(lambda: "Completed" in (text := job_text(signed_in, job)) and text, timeout=20)
    assert "Replay 3 runs ticked" in done and "2 replayed" in done and "1 failed" in done
    assert "First failures run_doesnotexist : run 'run_doesnotexist' not found" in done
    shown = rows(signed_in.get(filtered))
    assert len(shown) == 6 and set(shown[2:]) == {*waiting, finished}  # the replays, newest first

    # Elsewhere than the same list is not a place to go back to; nothing ticked starts nothing.
    answer = signed_in.post(f"{RUNS}/bulk-cancel", data={"csrf_token": token, "back": "https://evil.example/"})
    assert answer.headers["location"] == RUNS
    assert flash_of(signed_in.get(RUNS)) == ("error", "No runs selected: tick the runs to act on first.")
    assert signed_in.post(f"{RUNS}/bulk-delete", data={"csrf_token": token}).status_code == 404


def test_all_runs_matching_the_filters_are_cancelled_after_a_confirmation_and_a_job_can_be_aborted(
    signed_in: httpx.Client, client: Client
) -> None:
    everything = signed_in.get(RUNS)
    token = csrf_of(everything)
    assert "Cancel all" not in everything.text  # no filter: no button to act on every run
    before = newest_job(client) if list(client.runs.bulk.list()) else None
    answer = signed_in.post(f"{RUNS}/bulk-cancel", data={"csrf_token": token, "back": RUNS, "selection": "filter"})
    assert answer.status_code == 303
    kind, text = flash_of(signed_in.get(RUNS)) or ("", "")
    assert kind == "error" and text.startswith("Set a filter first: acting on every run of the environment")
    assert (newest_job(client) if list(client.runs.bulk.list()) else None) == before  # nothing started

    tag = _tag()
    waiting = [client.trigger("echo", {"n": n}, tags=[tag], delay="1h").id for n in range(3)]
    filtered = f"{RUNS}?tag={tag}&status=DELAYED"
    page = signed_in.get(filtered)
    assert "<b>3</b> runs match these filters." in page.text
    assert 'popovertarget="cancel-matching">Cancel all 3…' in page.text
    dialog = page.text[page.text.index('id="cancel-matching"') :]
    assert "Cancel all 3 runs matching these filters?" in dialog and f"tag: {tag}" in dialog
    assert 'name="selection" value="filter"' in dialog and "Cancel 3 runs</button>" in dialog

    form = {"csrf_token": token, "back": filtered, "selection": "filter"}
    answer = signed_in.post(f"{RUNS}/bulk-cancel", data=form)
    assert answer.status_code == 303 and answer.headers["location"] == filtered
    assert flash_of(signed_in.get(filtered)) == (
        "ok",
        "Cancel of all 3 runs matching these filters started: its progress is under Bulk actions.",
    )
    job = newest_job(client)
    done = assert_eventually(lambda: "Completed" in (text := job_text(signed_in, job)) and text, timeout=20)
    assert f"Cancel all 3 runs matching status Delayed · tag {tag}" in done and "3 cancelled" in done
    assert {client.runs.retrieve(i).status for i in waiting} == {"CANCELED"}

    # A long one: the strip polls itself while it runs, and Abort stops it after its page.
    many = f"many-{tag}"
    items = [{"task": "echo", "payload": {}, "options": {"delay": "1h", "tags": [many]}}] * 1000
    for _ in range(5):  # a page of cancels is one transaction: fewer runs could be done before the abort
        client.batch_trigger(items)
    signed_in.post(f"{RUNS}/bulk-cancel", data={**form, "back": f"{RUNS}?tag={many}"})
    job = newest_job(client)
    strip = strip_of(signed_in, f"{RUNS}?tag={many}").text
    abort_url = f"{RUNS}/bulk-actions/{job}/abort"
    refused = signed_in.post(abort_url, data={"back": RUNS})
    assert refused.status_code == 403  # no CSRF token: nothing happens
    answer = signed_in.post(abort_url, data={"csrf_token": token, "back": f"{RUNS}?tag={many}"})
    assert answer.status_code == 303 and answer.headers["location"] == f"{RUNS}?tag={many}"
    kind, text = flash_of(signed_in.get(answer.headers["location"])) or ("", "")
    assert kind == "ok" and text.startswith("Aborted the cancel of 5,000 runs: it stops after the page it is on.")
    assert f'action="{abort_url}"' in strip and 'hx-trigger="every 1s"' in strip  # it was running
    final = client.runs.bulk.wait(job, timeout=30)
    assert final.status == "ABORTED" and final.processed < 5000
    shown = job_text(signed_in, job)
    assert "Aborted" in shown and "Abort" not in shown.replace("Aborted", "")
    again = signed_in.post(abort_url, data={"csrf_token": token})
    assert flash_of(signed_in.get(again.headers["location"])) == (
        "ok",
        "That cancel had already finished (aborted): nothing to abort.",
    )
    client.runs.bulk.wait(client.runs.bulk.cancel(tag=many).id, timeout=120)  # leave nothing delayed


def test_a_member_cannot_act_on_another_projects_runs(stack: Stack) -> None:
    link = new_member_beside(stack, "elsewhere")
    with browser(stack) as member:
        assert member.get(link).status_code == 303
        token = csrf_of(member.get(RUNS))
        form = {"csrf_token": token, "run": "run_x"}
        assert member.post("/projects/elsewhere/env/dev/runs/bulk-cancel", data=form).status_code == 404
        assert member.get("/projects/elsewhere/env/dev/runs/bulk-actions").status_code == 404
        abort = "/projects/elsewhere/env/dev/runs/bulk-actions/bulk_x/abort"
        assert member.post(abort, data={"csrf_token": token}).status_code == 404
        assert (
            member.get("/projects/elsewhere/env/dev/runs", headers={"Accept": "text/event-stream"}).status_code == 404
        )
    with browser(stack) as anonymous:  # the strip is a fragment: 401 without a session, for htmx to sign in
        refused = anonymous.get(f"{RUNS}/bulk-actions")
        assert refused.status_code == 401 and refused.headers["hx-redirect"] == "/login"
