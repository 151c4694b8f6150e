"""The Tasks, Queues and Tokens pages in a real browser against one ``hightide dev``: the Test form
with a valid and an invalid payload, and a run that waits on a token finishing once the token is
completed from the Tokens page. Screenshots: light, dark and phone of each page."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.acceptance.conftest import Dev
from tests.browser.conftest import signed_in
from tests.support import assert_eventually

TASKS = """
    from pydantic import BaseModel, Field

    import asyncio

    from hightide import task, wait


    class Address(BaseModel):
        city: str
        postcode: str = Field(min_length=4, examples=["10115"])


    class Order(BaseModel):
        order_id: str = Field(examples=["ORD-1001"])
        quantity: int = Field(gt=0)
        gift_wrap: bool = False
        ship_to: Address


    @task(id="place-order", description="Charge the card and reserve stock", retry={"max_attempts": 1})
    async def place_order(payload: Order) -> dict:
        return {"placed": payload.order_id, "items": payload.quantity}


    @task(id="await-approval", queue={"name": "approvals", "concurrency_limit": 5})
    async def await_approval(payload: dict) -> dict:
        token = await wait.create_token(timeout="2h", tags=["approval", f"order-{payload['order']}"])
        result = await wait.for_token(token)
        return {"approved": result.output}


    @task(id="stock-count")
    async def stock_count(payload: dict) -> str:
        await asyncio.sleep(60)
        return "counted"
"""
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True}
DARK = {"viewport": {"width": 1280, "height": 800}, "color_scheme": "dark"}


def test_test_a_task_and_complete_a_token(
    chromium: Any, project: Callable[..., Path], dev: Callable[..., Dev], shots: Path
) -> None:
    from playwright.sync_api import expect

    handle = dev(project({"trigger/shop.py": TASKS}))
    client = handle.client
    waiter = client.trigger("await-approval", {"order": 1001}).id
    assert_eventually(lambda: client.runs.retrieve(waiter).status == "WAITING", timeout=30, what="the run to wait")
    base = f"{handle.api_url}/projects/default/env/dev"
    page = signed_in(chromium, handle)

    # Tasks: every task of the current version, with its counts.
    page.get_by_role("navigation", name="Pages", exact=True).get_by_role("link", name="Tasks").click()
    page.wait_for_url(f"{base}/tasks")
    row = page.locator("table.tasks tr", has_text="await-approval")
    expect(row.locator(".status.s-waiting")).to_have_text("Waiting 1")
    expect(page.get_by_text("Runs created in the last 24 hours")).to_be_visible()
    page.screenshot(path=str(shots / "tasks.png"), full_page=True)

    # A task's page: the Test form, prefilled from the Pydantic model's schema.
    page.get_by_role("link", name="place-order").click()
    page.wait_for_url(f"{base}/tasks/place-order")
    editor = page.get_by_label("Payload")
    assert json.loads(editor.input_value()) == {
        "order_id": "ORD-1001",
        "quantity": 1,
        "gift_wrap": False,
        "ship_to": {"city": "string", "postcode": "10115"},
    }
    page.screenshot(path=str(shots / "task.png"), full_page=True)

    # Invalid JSON, then a payload the schema refuses: the form again, as typed, with the reason.
    editor.fill('{"order_id": "ORD-7", "quantity": 2,}')
    page.get_by_role("button", name="Run test").click()
    expect(page.get_by_role("alert")).to_contain_text("payload: not valid JSON")
    expect(page.get_by_label("Payload")).to_have_value('{"order_id": "ORD-7", "quantity": 2,}')
    page.screenshot(path=str(shots / "task-invalid-json.png"), full_page=True)
    bad = {"order_id": "ORD-7", "quantity": 0, "ship_to": {"city": "Turin", "postcode": "10121"}}
    page.get_by_label("Payload").fill(json.dumps(bad))
    page.get_by_role("button", name="Run test").click()
    expect(page.get_by_role("alert")).to_contain_text("payload.quantity: 0 is less than or equal to the minimum of 0")
    assert json.loads(page.get_by_label("Payload").input_value()) == bad

    # A valid payload with options: the run is created and opened.
    page.get_by_label("Payload").fill(json.dumps({**bad, "quantity": 2}))
    page.get_by_label("Tags").fill("from-dashboard, test")
    page.get_by_label("Machine").select_option("micro")
    page.get_by_role("button", name="Run test").click()
    page.wait_for_url(re.compile(rf"{re.escape(base)}/runs/run_[0-9a-z]+$"))
    run_id = page.url.rsplit("/", 1)[1]
    assert_eventually(lambda: client.runs.retrieve(run_id).status == "COMPLETED", timeout=30, what="the test run")
    run = client.runs.retrieve(run_id)
    assert run.output == {"placed": "ORD-7", "items": 2} and run.tags == ["from-dashboard", "test"]
    page.goto(f"{base}/tasks/place-order")
    expect(page.locator("ul.run-list li").first).to_contain_text(run_id)

    # Queues: the waiting run holds no slot; the limits; a run starting shows up without a reload.
    page.goto(f"{base}/queues")
    approvals = page.locator("table.queues tr", has_text="approvals")
    expect(approvals.locator("td.limit")).to_contain_text("5")
    expect(approvals.locator("td.running")).to_have_text("0")
    counting = page.locator("table.queues tr", has_text="task/stock-count")
    expect(counting.locator("td.running")).to_have_text("0")
    slow = client.trigger("stock-count", {}).id
    expect(counting.locator("td.running")).to_have_text("1", timeout=15_000)
    expect(page.locator(".load-numbers")).to_contain_text("1 executing of a limit of 100")
    page.screenshot(path=str(shots / "queues.png"), full_page=True)
    client.runs.cancel(slow)

    # Tokens: complete the run's token with a JSON body; the run continues and finishes.
    page.goto(f"{base}/tokens")
    token_row = page.locator("table.tokens tbody tr", has_text="order-1001").first
    expect(token_row.locator(".status")).to_have_text("Waiting")
    expect(token_row.get_by_role("link", name=waiter)).to_be_visible()
    page.screenshot(path=str(shots / "tokens.png"), full_page=True)
    page.get_by_text("Complete this token").click()
    page.get_by_label("Data").fill("{approved: yes}")
    page.get_by_role("button", name="Complete token").click()
    expect(page.get_by_role("alert")).to_contain_text("data: not valid JSON")
    page.screenshot(path=str(shots / "tokens-invalid.png"), full_page=True)
    page.get_by_label("Data").fill('{"approved": true, "by": "ada"}')
    page.get_by_role("button", name="Complete token").click()
    expect(page.get_by_role("status")).to_contain_text("completed; the runs waiting on it continue")
    assert_eventually(lambda: client.runs.retrieve(waiter).status == "COMPLETED", timeout=30, what="the waiter")
    assert client.runs.retrieve(waiter).output == {"approved": {"approved": True, "by": "ada"}}
    page.screenshot(path=str(shots / "tokens-completed.png"), full_page=True)
    page.context.close()

    # Dark and phone: every page readable, nothing scrolls sideways.
    client.trigger("await-approval", {"order": 1002})
    for name, options in (("dark", DARK), ("phone", PHONE), ("phone-dark", {**PHONE, "color_scheme": "dark"})):
        page = signed_in(chromium, handle, **options)
        for slug in ("tasks", "tasks/place-order", "queues", "tokens"):
            page.goto(f"{base}/{slug}")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= options["viewport"]["width"], f"{slug} scrolls sideways on {name}: {width}px"  # type: ignore[index]
            page.screenshot(path=str(shots / f"{slug.replace('/', '-')}-{name}.png"), full_page=True)
        page.context.close()
