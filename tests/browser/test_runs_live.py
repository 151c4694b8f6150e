"""The Runs list in a real browser against one real ``hightide dev``: runs appear and change status
without a reload, a ticked run stays ticked while its row changes, two ticked runs are cancelled
at once, a row opens its run, and the page fits a phone and the dark."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.acceptance.conftest import Dev
from tests.browser.conftest import signed_in

TASKS = """
    import asyncio

    from hightide import task


    @task(id="resize-image")
    async def resize_image(payload: dict) -> dict:
        await asyncio.sleep(payload.get("seconds", 0))
        return {"width": 640}
"""
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True}


def test_runs_appear_and_change_live_and_two_are_cancelled_at_once(
    chromium: Any, project: Callable[..., Path], dev: Callable[..., Dev], shots: Path
) -> None:
    from playwright.sync_api import expect

    handle = dev(project({"trigger/images.py": TASKS}))
    client = handle.client
    page = signed_in(chromium, handle)
    runs_url = f"{handle.api_url}/projects/default/env/dev/runs"
    expect(page.get_by_role("heading", name="No runs yet")).to_be_visible()
    expect(page.locator("#runs-live")).to_have_class(re.compile(r"\bon\b"))  # the stream is connected
    page.screenshot(path=str(shots / "runs-empty-live.png"), full_page=True)

    # A run triggered through the SDK appears, and finishes, without a reload.
    quick = client.trigger("resize-image", {"seconds": 1.5}, tags=["image-42"]).id
    row = page.locator(f"#run-{quick}")
    expect(row).to_be_visible(timeout=15_000)
    expect(page.get_by_role("heading", name="No runs yet")).to_have_count(0)
    expect(row.locator(".status")).to_have_text("Completed", timeout=30_000)
    # A stream opened again from scratch may send a run already shown as new: it is not added twice.
    again = '<tbody hx-swap-oob="afterbegin:#runs-body"><tr id="run-' + quick + '"><td>again</td></tr></tbody>'
    page.evaluate("html => htmx.swap('#runs-live', html, {swapStyle: 'none'})", again)
    expect(page.locator(f"#run-{quick}")).to_have_count(1)
    expect(row.locator(".status")).to_have_text("Completed")

    # New runs go on top; a ticked run stays ticked while its row is re-rendered.
    later = [client.trigger("resize-image", {"n": n}, delay="1h").id for n in range(3)]
    for run_id in later:
        expect(page.locator(f"#run-{run_id}")).to_be_visible(timeout=15_000)
    expect(page.locator("#runs-body tr").first).to_have_id(f"run-{later[-1]}")
    page.locator(f"#pick-{later[0]}").check()
    page.locator(f"#pick-{later[1]}").check()
    expect(page.locator("#runs-selected")).to_have_text("2 runs selected")
    page.evaluate(f"document.getElementById('run-{later[0]}').dataset.before = 'yes'")
    client.runs.reschedule(later[0], delay="2h")  # the run changes: its row is swapped for a new one
    expect(page.locator(f"#run-{later[0]}[data-before]")).to_have_count(0, timeout=15_000)
    expect(page.locator(f"#pick-{later[0]}")).to_be_checked()
    client.runs.cancel(later[2])  # an unticked run's status changes live too
    expect(page.locator(f"#run-{later[2]} .status")).to_have_text("Canceled", timeout=15_000)
    page.screenshot(path=str(shots / "runs-live-selected.png"), full_page=True)

    # Cancel the two ticked runs at once: back on the same page, saying what happened.
    page.get_by_role("button", name="Cancel selected").click()
    page.wait_for_url(runs_url)
    expect(page.get_by_role("status").filter(has_text="Cancelled")).to_have_text("Cancelled 2 runs")
    for run_id in later[:2]:
        expect(page.locator(f"#run-{run_id} .status")).to_have_text("Canceled")
    expect(page.locator("#runs-selected")).to_contain_text("Tick runs")
    assert client.runs.retrieve(later[1]).status == "CANCELED"
    page.screenshot(path=str(shots / "runs-after-cancel.png"), full_page=True)

    # A row opens its run: a click anywhere on it (here on its task) follows the id's link.
    box = page.locator(f"#run-{quick} td.c-task").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # where a person would
    page.wait_for_url(f"{runs_url}/{quick}")
    page.go_back()
    page.wait_for_url(runs_url)

    for name, options in (
        ("dark", {"viewport": {"width": 1280, "height": 800}, "color_scheme": "dark"}),
        ("phone", PHONE),
        ("phone-dark", {**PHONE, "color_scheme": "dark"}),
    ):
        other = signed_in(chromium, handle, **options)
        expect(other.locator(f"#run-{quick}")).to_be_visible()
        width = other.evaluate("document.documentElement.scrollWidth")
        assert width <= options["viewport"]["width"], f"the page scrolls sideways on {name}: {width}px"  # type: ignore[index]
        other.screenshot(path=str(shots / f"runs-{name}.png"), full_page=True)
        other.context.close()
    page.context.close()
