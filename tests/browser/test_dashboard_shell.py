"""Sign-in, refusal and the page shell in a real browser, against real ``hightide dev`` and
``hightide server`` processes."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.acceptance.conftest import Dev, Server
from tests.browser.conftest import dashboard_link, dashboard_link_for
from tests.support import assert_eventually, free_port
from tests.webhooks import webhook_receiver

TASKS = """
    import asyncio

    from hightide import task


    @task(id="send-invoice", retry={"max_attempts": 1})
    async def send_invoice(payload: dict) -> dict:
        return {"sent": payload["invoice"]}


    @task(id="charge-card", retry={"max_attempts": 1})
    async def charge_card(payload: dict) -> None:
        raise ValueError("card declined")


    @task(id="nightly-report")
    async def nightly_report(payload: dict) -> str:
        await asyncio.sleep(120)
        return "done"
"""
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True}
PAGES = [
    ("Tasks", "tasks"),
    ("Schedules", "schedules"),
    ("Queues", "queues"),
    ("Tokens", "tokens"),
    ("Alerts", "alerts"),
    ("Deployments", "deployments"),
    ("Environment", "environment"),
]


def some_runs(handle: Dev) -> None:
    client = handle.client
    ids = [
        client.trigger("send-invoice", {"invoice": f"INV-{n}"}, tags=["billing", f"customer-{n}"]).id for n in range(4)
    ]
    ids.append(client.trigger("charge-card", {"amount": 1200}, tags=["billing"]).id)
    client.trigger("nightly-report", {})
    client.trigger("hello-world", {"name": "Ada"})

    def finished() -> bool:
        return all(client.runs.retrieve(i).is_finished for i in ids)

    assert_eventually(finished, timeout=60, interval=0.2, what="the runs to finish")


def test_sign_in_by_the_printed_link_and_walk_the_pages(
    chromium: Any, project: Callable[..., Path], dev: Callable[..., Dev], shots: Path
) -> None:
    handle = dev(project({"trigger/billing.py": TASKS}))
    link = dashboard_link(handle.output(), handle.port)
    with webhook_receiver() as hook:
        # Two webhooks for the Alerts page: one answering (after a failed first try), one unreachable.
        hook.statuses = [500]
        alerts = handle.client.alerts
        answering = alerts.create(url=hook.url, events=["run.failed"], description="on-call pager")
        alerts.create(
            url=f"http://127.0.0.1:{free_port()}/hooks/hightide-staging-mirror-for-the-payments-team",
            events=["run.failed"],
        )
        some_runs(handle)
        assert_eventually(
            lambda: [d.status for d in alerts.deliveries(answering.id)] == ["DELIVERED"],
            timeout=20,
            what="the charge-card failure delivered",
        )
    base = handle.api_url
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()

    # No session: the login page, whatever was asked for, and no data.
    page.goto(f"{base}/projects/default/env/dev/runs")
    assert page.url.startswith(f"{base}/login?next=")
    assert page.get_by_role("heading", name="Sign in to the dashboard").is_visible()
    assert "send-invoice" not in page.content()
    page.screenshot(path=str(shots / "login.png"), full_page=True)

    page.get_by_label("Login link or token").fill("htl_not-a-real-token")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text().startswith("This sign-in link does not work")
    assert "send-invoice" not in page.content()
    page.screenshot(path=str(shots / "login-refused.png"), full_page=True)

    # The printed link, pasted: signed in, and back to the page asked for.
    page.get_by_label("Login link or token").fill(link)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/projects/default/env/dev/runs")
    cookie = next(c for c in context.cookies() if c["name"] == "hightide_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert page.evaluate("document.cookie") == ""  # the page's scripts cannot read the session
    assert page.get_by_role("heading", name="Runs").is_visible()
    assert page.get_by_text("admin@localhost").is_visible()
    rows = page.locator("table.runs tbody tr")
    assert rows.count() == 7
    assert page.locator(".status.s-failed").count() == 1
    assert page.locator(".status.s-completed").count() == 5
    page.screenshot(path=str(shots / "runs.png"), full_page=True)

    page.get_by_label("Status").select_option("FAILED")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r".*status=FAILED.*"))
    assert rows.count() == 1 and "charge-card" in rows.first.inner_text()
    page.screenshot(path=str(shots / "runs-filtered.png"), full_page=True)

    # Two schedules for the Schedules page to show: one on weekdays in Paris, one deactivated.
    schedules = handle.client.schedules
    long_id = "team-paris-weekday-digest-for-the-whole-operations-group-and-its-managers"
    schedules.create(task="hello-world", cron="0 9 * * 1-5", timezone="Europe/Paris", external_id=long_id)
    schedules.deactivate(schedules.create(task="charge-card", cron="30 2 L * *").id)
    for title, slug in PAGES:
        page.get_by_role("navigation", name="Pages", exact=True).get_by_role(
            "link", name=re.compile(f"^{title}")
        ).click()
        page.wait_for_url(f"{base}/projects/default/env/dev/{slug}")
        assert page.get_by_role("heading", name=re.compile(f"^{title}")).first.is_visible()
        current = page.locator('nav.sections a[aria-current="page"]')
        assert current.inner_text().startswith(title)
        page.screenshot(path=str(shots / f"{slug}.png"), full_page=True)

    # The Schedules page in the dark and on a phone, a long external id included: nothing scrolls sideways.
    for name, options in (
        ("dark", {"color_scheme": "dark"}),
        ("phone", PHONE),
        ("phone-dark", {**PHONE, "color_scheme": "dark"}),
    ):
        other = chromium.new_context(
            storage_state=context.storage_state(), **({"viewport": {"width": 1280, "height": 800}} | options)
        )
        view = other.new_page()
        view.goto(f"{base}/projects/default/env/dev/schedules")
        assert view.get_by_text(long_id).is_visible()
        for slug in ("schedules", "alerts"):
            view.goto(f"{base}/projects/default/env/dev/{slug}")
            view.screenshot(path=str(shots / f"{slug}-{name}.png"), full_page=True)
            width = view.evaluate("document.documentElement.scrollWidth")
            assert width <= view.viewport_size["width"], f"the {slug} page scrolls sideways on {name}: {width}px"
        other.close()

    # The switcher: the same page of another environment.
    page.locator(".switcher summary").click()
    page.screenshot(path=str(shots / "switcher.png"))
    page.locator(".switcher .menu a", has_text="prod").click()
    page.wait_for_url(f"{base}/projects/default/env/prod/environment")

    # A state-changing request without the CSRF token is refused, even with the cookie.
    refused = page.request.post(f"{base}/logout")
    assert refused.status == 403
    page.goto(f"{base}/projects/default/env/dev/runs")
    assert page.get_by_role("heading", name="Runs").is_visible()

    # Sign out: the session ends; the pages lead to the login page again.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{base}/login?signed_out=1")
    assert page.get_by_role("status").inner_text() == "You are signed out."
    page.goto(f"{base}/projects/default/env/dev/runs")
    assert page.url.startswith(f"{base}/login")
    page.goto(link)  # the link worked once
    assert page.get_by_role("alert").is_visible()
    context.close()


def test_the_shell_on_a_phone_and_in_the_dark(
    chromium: Any, project: Callable[..., Path], dev: Callable[..., Dev], shots: Path
) -> None:
    handle = dev(project({"trigger/billing.py": TASKS}))
    some_runs(handle)
    for name, options in (
        ("phone", {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True}),
        ("dark", {"viewport": {"width": 1280, "height": 800}, "color_scheme": "dark"}),
        ("phone-dark", {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "color_scheme": "dark"}),
    ):
        context = chromium.new_context(**options)
        page = context.new_page()
        page.goto(f"{handle.api_url}/login")
        page.screenshot(path=str(shots / f"login-{name}.png"), full_page=True)
        page.goto(dashboard_link_for(handle))
        page.wait_for_url(f"{handle.api_url}/projects/default/env/dev/runs")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= options["viewport"]["width"], f"the page scrolls sideways on {name}: {width}px"  # type: ignore[index]
        page.screenshot(path=str(shots / f"runs-{name}.png"), full_page=True)
        context.close()


def test_the_servers_first_admin_link_signs_in(chromium: Any, server: Callable[..., Server], shots: Path) -> None:
    handle = server()
    output = handle.proc.wait_for_output("Dashboard:")
    link = dashboard_link(output, handle.port)
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(f"{handle.api_url}/")
    assert page.url == f"{handle.api_url}/login"
    page.goto(link)
    page.wait_for_url(f"{handle.api_url}/projects/default/env/dev/runs")
    assert page.get_by_role("heading", name="No runs yet").is_visible()
    page.screenshot(path=str(shots / "runs-empty.png"), full_page=True)
    context.close()
