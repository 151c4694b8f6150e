"""The Queues page's actions in a real browser against one ``hightide dev``: pause a queue (after
confirming), see a run triggered meanwhile stay queued, resume it and see the run complete; override
a queue's limit (the 5 s refresh leaves a number being typed alone) and reset it. Screenshots: light,
dark and phone, with a paused and an overridden queue."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.acceptance.conftest import Dev
from tests.browser.conftest import signed_in
from tests.support import assert_eventually

TASKS = """
    import asyncio

    from hightide import queue, task

    reports = queue("reports", concurrency_limit=2, rate_limit={"limit": 30, "period": "1m"})


    @task(id="email", description="Send one email")
    async def email(payload: dict) -> dict:
        return {"sent": payload["to"]}


    @task(id="monthly-report", queue=reports)
    async def monthly_report(payload: dict) -> str:
        await asyncio.sleep(payload.get("seconds", 0))
        return "reported"
"""
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True}
DARK = {"viewport": {"width": 1280, "height": 800}, "color_scheme": "dark"}
# Counts the page's refreshes that skipped their turn (queues.js cancels them while the table is in use).
COUNT_SKIPS = """() => {
  window.skippedRefreshes = 0;
  document.addEventListener("htmx:beforeRequest", (event) => {
    if (event.detail.elt.id === "queues" && event.defaultPrevented) window.skippedRefreshes += 1;
  });
}"""


def test_pause_resume_override_and_reset_a_queue(
    chromium: Any, project: Callable[..., Path], dev: Callable[..., Dev], shots: Path
) -> None:
    from playwright.sync_api import expect

    handle = dev(project({"trigger/mail.py": TASKS}))
    client = handle.client
    base = f"{handle.api_url}/projects/default/env/dev"
    page = signed_in(chromium, handle)
    page.get_by_role("navigation", name="Pages", exact=True).get_by_role("link", name="Queues").click()
    page.wait_for_url(f"{base}/queues")
    email = page.locator("table.queues tbody tr", has_text="task/email")
    notice = page.get_by_role("status")

    # Pause asks first; Keep it running changes nothing.
    email.get_by_role("button", name="Pause task/email").click()
    dialog = page.get_by_role("dialog", name="Pause task/email?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("None of its runs start until you resume it")
    page.screenshot(path=str(shots / "pause-dialog.png"))
    dialog.get_by_role("button", name="Keep it running").click()
    expect(dialog).to_be_hidden()
    assert not client.queues.retrieve("task/email").paused
    email.get_by_role("button", name="Pause task/email").click()
    dialog.get_by_role("button", name="Pause queue").click()
    expect(notice).to_have_text(
        "Paused task/email: its queued runs wait until you resume it; runs executing now go on."
    )
    assert client.queues.retrieve("task/email").paused
    expect(email.locator(".status.s-paused")).to_have_text("Paused")
    expect(email.locator(".paused-since")).to_contain_text(re.compile(r"paused \d+s ago"))
    expect(email).to_have_class(re.compile(r"\bpaused\b"))

    # A run triggered while paused stays queued (a run of another queue still starts and finishes).
    held = client.trigger("email", {"to": "ada@example.com"}).id
    other = client.trigger("monthly-report", {}).id
    assert_eventually(lambda: client.runs.retrieve(other).status == "COMPLETED", timeout=30, what="the report")
    assert client.runs.retrieve(held).status == "QUEUED"
    expect(email.locator("td.queued")).to_have_text("1", timeout=15_000)  # the page refreshed itself
    page.screenshot(path=str(shots / "paused.png"), full_page=True)

    # A limit being typed survives the refresh: it skips its turn while the table is in use.
    page.evaluate(COUNT_SKIPS)
    limit = email.get_by_label("New concurrency limit of task/email")
    limit.fill("3")
    second = client.trigger("email", {"to": "grace@example.com"}).id
    page.locator("h1").click()  # focus leaves the input: the number typed still holds the refresh
    skipped = lambda: page.evaluate("() => window.skippedRefreshes") >= 2  # noqa: E731
    assert_eventually(skipped, timeout=20, interval=0.5, what="two refreshes to skip their turn")
    expect(limit).to_have_value("3")
    expect(email.locator("td.queued")).to_have_text("1")  # not refreshed: the second run is not counted yet
    email.get_by_role("button", name="Set the limit of task/email").click()
    expect(notice).to_have_text(
        "Limit of task/email set to 3 (its tasks declare none): at most 3 runs of it execute at once until you reset the limit."
    )
    assert client.queues.retrieve("task/email").concurrency_limit == 3
    expect(email.locator("td.limit .limit-value")).to_have_text("3")
    expect(email.locator(".override-note")).to_have_text("override; none declared")
    expect(email.locator("td.queued")).to_have_text("2")
    page.screenshot(path=str(shots / "overridden.png"), full_page=True)

    # Resume: both runs start and complete.
    email.get_by_role("button", name="Resume task/email").click()
    expect(notice).to_have_text("Resumed task/email: its queued runs start again, as its limit allows.")
    both_done = lambda: all(client.runs.retrieve(r).status == "COMPLETED" for r in (held, second))  # noqa: E731
    assert_eventually(both_done, timeout=30, what="both emails to be sent")
    assert client.runs.retrieve(held).output == {"sent": "ada@example.com"}
    expect(email.locator("td.queued")).to_have_text("0", timeout=15_000)
    expect(email.locator(".status.s-paused")).to_have_count(0)
    expect(email.get_by_role("button", name="Pause task/email")).to_be_visible()

    # Reset: back to no limit of its own.
    email.get_by_role("button", name="Reset the limit of task/email").click()
    expect(notice).to_have_text(
        "Reset the limit of task/email: back to none of its own, only the environment's 100 applies."
    )
    assert client.queues.retrieve("task/email").concurrency_limit_override is None
    expect(email.locator("td.limit")).to_have_text("none (the environment's 100)")
    expect(email.locator(".override-note")).to_have_count(0)
    page.goto(f"{base}/runs/{held}")
    expect(page.locator(".status.s-completed").first).to_have_text("Completed")
    page.context.close()

    # Light, dark and phone with a paused queue and an overridden one; nothing scrolls sideways.
    client.queues.pause("task/email")
    client.queues.override_concurrency_limit("reports", 1)
    client.trigger("email", {"to": "lin@example.com"})
    for name, options in (
        ("light", {}),
        ("dark", DARK),
        ("tablet", {"viewport": {"width": 900, "height": 1000}}),
        ("phone", PHONE),
        ("phone-dark", {**PHONE, "color_scheme": "dark"}),
    ):
        page = signed_in(chromium, handle, **options)
        page.goto(f"{base}/queues")
        expect(page.locator("table.queues .status.s-paused")).to_have_count(1)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= page.viewport_size["width"], f"the Queues page scrolls sideways on {name}: {width}px"
        page.screenshot(path=str(shots / f"queues-{name}.png"), full_page=True)
        table = page.evaluate(
            "() => { const t = document.querySelector('.table-wrap'); return [t.scrollWidth, t.clientWidth] }"
        )
        assert table[0] <= table[1], f"the table of queues does not fit its box on {name}: {table}"
        if name.startswith("phone"):
            page.get_by_role("button", name="Pause reports").click()
            page.screenshot(path=str(shots / f"pause-dialog-{name}.png"))
        page.context.close()
