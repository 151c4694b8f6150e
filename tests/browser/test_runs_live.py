"""The Runs list in a real browser against one real ``hightide dev``: runs appear and change status
without a reload, a ticked run stays ticked while its row changes, two ticked runs are cancelled
by a background job and all the runs of a filter after a confirmation (the Bulk actions strip
following them), a row opens its run, and the page fits a phone and the dark."""

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


def test_runs_appear_and_change_live_and_are_cancelled_by_bulk_jobs(
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

    # Cancel the two ticked runs: a background job; back on the same page, saying what started,
    # and the Bulk actions strip follows it to the end while the rows turn Canceled live.
    page.get_by_role("button", name="Cancel selected").click()
    page.wait_for_url(runs_url)
    expect(page.get_by_role("status").filter(has_text="started")).to_have_text(
        "Cancel of 2 runs started: its progress is under Bulk actions."
    )
    job = page.locator("#bulk-actions .bulk-job").first
    expect(job).to_contain_text("Cancel 2 runs ticked")
    expect(job.locator(".status")).to_have_text("Completed", timeout=15_000)
    expect(job).to_contain_text("2 cancelled")
    for run_id in later[:2]:
        expect(page.locator(f"#run-{run_id} .status")).to_have_text("Canceled", timeout=15_000)
    expect(page.locator("#runs-selected")).to_contain_text("Tick runs")
    expect(page.locator("#bulk-actions")).not_to_have_attribute("hx-trigger", re.compile("."))  # polling stopped
    assert client.runs.retrieve(later[1]).status == "CANCELED"
    page.screenshot(path=str(shots / "runs-after-cancel.png"), full_page=True)

    # All the runs of a filter, after a confirmation: here the 40 delayed runs of a batch.
    batch = [client.trigger("resize-image", {"n": n}, delay="1h", tags=["batch-7"]).id for n in range(40)]
    page.goto(f"{runs_url}?status=DELAYED&tag=batch-7")
    expect(page.locator(".bulk-match")).to_contain_text("40 runs match these filters.")
    page.get_by_role("button", name="Cancel all 40…").click()
    dialog = page.get_by_role("dialog", name="Cancel all 40 runs matching these filters?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("tag: batch-7")
    page.screenshot(path=str(shots / "runs-cancel-matching-confirm.png"), full_page=True)
    dialog.get_by_role("button", name="Cancel 40 runs").click()
    page.wait_for_url(f"{runs_url}?status=DELAYED&tag=batch-7")
    expect(page.get_by_role("status").filter(has_text="started")).to_contain_text("Cancel of all 40 runs matching")
    job = page.locator("#bulk-actions .bulk-job").first
    expect(job).to_contain_text("all 40 runs matching status Delayed · tag batch-7")
    expect(job.locator(".status")).to_have_text("Completed", timeout=20_000)
    expect(job).to_contain_text("40 of 40")
    assert {client.runs.retrieve(i).status for i in batch} == {"CANCELED"}
    client.runs.bulk.wait(client.runs.bulk.replay(ids=[quick, "run_doesnotexist"]).id, timeout=30)
    page.goto(f"{runs_url}?tag=batch-7")
    failed = page.locator("#bulk-actions .bulk-job").first
    expect(failed).to_contain_text("1 failed")
    failed.get_by_text("First failures").click()
    expect(failed.locator(".bulk-failures")).to_contain_text("run_doesnotexist")
    page.screenshot(path=str(shots / "runs-bulk-strip.png"), full_page=True)

    # A long one shows its progress while it runs, refreshing itself, and Abort stops it.
    # (10,000 runs: a page of cancels is one transaction, so fewer would be done before the click.)
    items = [{"task": "resize-image", "payload": {}, "options": {"delay": "1h", "tags": ["batch-8"]}}] * 1000
    for _ in range(10):
        client.batch_trigger(items)
    page.goto(f"{runs_url}?tag=batch-8")
    page.get_by_role("button", name="Cancel all 10,000…").click()
    page.get_by_role("button", name="Cancel 10,000 runs").click()
    page.wait_for_url(f"{runs_url}?tag=batch-8")
    running = page.locator("#bulk-actions .bulk-job.is-running")
    expect(running).to_contain_text("all 10,000 runs matching tag batch-8")
    expect(page.locator("#bulk-actions")).to_have_attribute("hx-trigger", "every 1s")
    page.screenshot(path=str(shots / "runs-bulk-running.png"))
    running.get_by_role("button", name=re.compile("^Abort")).click()
    page.wait_for_url(f"{runs_url}?tag=batch-8")
    expect(page.get_by_role("status").filter(has_text="Aborted")).to_contain_text("stops after the page it is on")
    aborted = page.locator("#bulk-actions .bulk-job").first
    expect(aborted.locator(".status")).to_have_text("Aborted")
    expect(page.locator("#bulk-actions .is-running")).to_have_count(0, timeout=15_000)
    client.runs.bulk.wait(client.runs.bulk.cancel(tag="batch-8").id, timeout=120)  # leave nothing delayed
    page.goto(f"{runs_url}?tag=image-42")

    # A row opens its run: a click anywhere on it (here on its task) follows the id's link.
    page.locator(f"#run-{quick} td.c-task").scroll_into_view_if_needed()
    box = page.locator(f"#run-{quick} td.c-task").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # where a person would
    page.wait_for_url(f"{runs_url}/{quick}")
    page.go_back()
    page.wait_for_url(f"{runs_url}?tag=image-42")

    for name, options in (
        ("dark", {"viewport": {"width": 1280, "height": 800}, "color_scheme": "dark"}),
        ("phone", PHONE),
        ("phone-dark", {**PHONE, "color_scheme": "dark"}),
    ):
        other = signed_in(chromium, handle, **options)
        other.goto(f"{runs_url}?tag=batch-7")
        expect(other.locator("#bulk-actions .bulk-job").first).to_be_visible()
        other.locator("#bulk-actions details").first.evaluate("d => d.open = true")
        width = other.evaluate("document.documentElement.scrollWidth")
        assert width <= options["viewport"]["width"], f"the page scrolls sideways on {name}: {width}px"  # type: ignore[index]
        other.screenshot(path=str(shots / f"runs-{name}.png"), full_page=True)
        other.screenshot(path=str(shots / f"runs-{name}-top.png"))  # what a person sees first
        other.context.close()
    page.context.close()
