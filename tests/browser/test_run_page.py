"""The Run page in a real browser against a real ``hightide dev``: a run finishing live, a span's
logs and attributes, Cancel, and Replay with an edited payload."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.acceptance.conftest import Dev
from tests.browser.conftest import signed_in

TASKS = """
    import asyncio

    from hightide import logger, metadata, step, task


    @task(id="resize-image")
    async def resize_image(payload: dict) -> dict:
        with logger.trace("download", url=payload["url"]) as span:
            span.set_attribute("image.bytes", 52311)
            logger.info("downloaded the image")
        return {"width": payload["width"]}


    @task(id="checkout")
    async def checkout(payload: dict) -> dict:
        with logger.trace("prepare", order=payload["order"]) as span:
            span.set_attribute("cart.items", 3)
            logger.info("cart loaded")
        metadata.set("progress", 0.5)
        charged = await step("charge", lambda: 4200)
        image = await resize_image.trigger_and_wait({"url": "https://example.com/a.png", "width": 320}).unwrap()
        await asyncio.sleep(payload.get("seconds", 0))
        logger.warning("the carrier is slow", carrier="ups")
        metadata.set("progress", 1.0)
        return {"charged": charged, "image": image}


    @task(id="nightly-report")
    async def nightly_report(payload: dict) -> str:
        await asyncio.sleep(120)
        return "done"
"""
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True}


def test_a_run_finishes_live_and_can_be_inspected_cancelled_and_replayed(
    chromium: Any, project: Callable[..., Path], dev: Callable[..., Dev], shots: Path
) -> None:
    from playwright.sync_api import expect

    handle = dev(project({"trigger/shop.py": TASKS}))
    runs = f"{handle.api_url}/projects/default/env/dev/runs"
    page = signed_in(chromium, handle)
    run_id = handle.client.trigger("checkout", {"order": "A-17", "seconds": 5}, tags=["shop"]).id

    # A running run's page: it finishes before our eyes, without a reload.
    page.goto(f"{runs}/{run_id}")
    status = page.locator("#part-status .status")
    expect(page.get_by_role("heading", name="checkout", level=1)).to_be_visible()
    expect(page.locator(".live-dot")).to_be_visible()
    page.evaluate("window.stillTheSamePage = true")
    expect(page.locator("#part-trace .wf-label").get_by_text("resize-image", exact=True)).to_be_visible(timeout=30_000)
    page.screenshot(path=str(shots / "run-live.png"), full_page=True)
    expect(status).to_have_text("Completed", timeout=30_000)
    expect(page.locator(".live-dot")).to_have_count(0)
    expect(page.locator("#span-panel")).to_contain_text("the carrier is slow")  # the run's logs, read again
    expect(page.locator("#part-result")).to_contain_text('"charged": 4200')
    expect(page.locator("#part-metadata")).to_contain_text('"progress": 1.0')
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    assert page.evaluate("window.stillTheSamePage") is True
    page.screenshot(path=str(shots / "run-finished.png"), full_page=True)

    # A span's attributes and logs, on a click.
    page.locator(".wf-row", has_text="prepare").click()
    panel = page.locator("#span-panel")
    expect(panel.locator("h3")).to_have_text("prepare")
    expect(panel).to_contain_text("cart.items")
    expect(panel).to_contain_text("cart loaded")
    expect(panel).not_to_contain_text("the carrier is slow")
    assert re.search(r"\?span=[0-9a-f]+$", page.url)  # a link to this span, to share
    page.screenshot(path=str(shots / "run-span.png"), full_page=True)
    page.locator(".wf-row", has_text="download").click()
    expect(panel).to_contain_text("downloaded the image")
    expect(panel).to_contain_text("image.bytes")

    # Replay with an edited payload: the new run's page.
    page.get_by_role("button", name="Replay", exact=True).click()
    dialog = page.locator("#replay-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("textarea")).to_have_value('{\n  "order": "A-17",\n  "seconds": 5\n}')
    dialog.locator("textarea").fill('{"order": "B-2"')
    page.screenshot(path=str(shots / "run-replay-dialog.png"))
    dialog.get_by_role("button", name="Replay run").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid JSON")
    expect(page.locator("textarea[name=payload]")).to_have_value('{"order": "B-2"')  # kept, to fix
    page.locator("textarea[name=payload]").fill('{"order": "B-2"}')
    page.get_by_role("button", name="Replay run").click()
    page.wait_for_url(re.compile(rf"{re.escape(runs)}/run_\w+\?flash=replayed.*"))
    assert run_id not in page.url.split("?")[0]
    expect(page.get_by_role("status")).to_contain_text("Replay started")
    expect(page.locator("#payload-title + pre")).to_contain_text('"order": "B-2"')
    expect(page.locator("#part-status .status")).to_have_text("Completed", timeout=30_000)

    # Cancel a long run.
    long_id = handle.client.trigger("nightly-report", {}).id
    page.goto(f"{runs}/{long_id}")
    # Queued or already executing: the dialog stays open when the status changes under it.
    expect(page.locator("#part-status .status")).to_have_text(re.compile("Executing|Queued"))
    page.locator(".run-actions").get_by_role("button", name="Cancel run").click()
    confirm = page.locator("#cancel-dialog")
    expect(confirm).to_be_visible()
    page.screenshot(path=str(shots / "run-cancel-dialog.png"))
    confirm.get_by_role("button", name="Cancel run").click()
    page.wait_for_url(f"{runs}/{long_id}?flash=cancelled")
    expect(page.get_by_role("status")).to_contain_text("Run cancelled")
    expect(page.locator("#part-status .status")).to_have_text("Canceled")
    assert handle.client.runs.retrieve(long_id).status == "CANCELED"
    page.context.close()

    # The finished page in the dark and on a phone, with no sideways scroll.
    for name, options in (
        ("dark", {"color_scheme": "dark"}),
        ("phone", PHONE),
        ("phone-dark", {**PHONE, "color_scheme": "dark"}),
    ):
        other = signed_in(chromium, handle, **options)
        other.goto(f"{runs}/{run_id}")
        expect(other.locator("#part-status .status")).to_have_text("Completed")
        width = other.evaluate("document.documentElement.scrollWidth")
        assert width <= other.viewport_size["width"], f"the page scrolls sideways ({name}): {width}px"
        other.screenshot(path=str(shots / f"run-{name}.png"), full_page=True)
        other.context.close()
