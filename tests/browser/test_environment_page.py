"""The Environment page in a real browser, against a real ``hightide dev``: create a key and see it
once, use it, revoke it; add a member and open their one-time link; light, dark and phone."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import Dev
from tests.browser.conftest import signed_in

expect = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed").expect


def test_keys_and_members_on_the_environment_page(
    chromium: Any, project: Callable[..., Path], dev: Callable[..., Dev], shots: Path
) -> None:
    handle = dev(project())
    base = handle.api_url
    page = signed_in(chromium, handle)
    environment = f"{base}/projects/default/env/dev/environment"
    page.get_by_role("navigation", name="Pages", exact=True).get_by_role("link", name="Environment").click()
    page.wait_for_url(environment)
    keys = page.locator("table.keys tbody tr")
    expect(keys).to_have_count(1)  # dev's own key, by its first characters
    expect(keys.first).to_contain_text(handle.secret_key[: len("ht_dev_") + 4] + "…")
    assert handle.secret_key not in page.content()
    expect(page.get_by_role("heading", name="Environment variables")).to_be_visible()
    page.screenshot(path=str(shots / "environment.png"), full_page=True)

    # Create a key: its secret is shown once, on the page that answers the form.
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("heading", name="Copy this key now")).to_be_visible()
    expect(page.get_by_text("It will not be shown again.")).to_be_visible()
    secret = page.locator("code.secret").inner_text().strip()
    assert re.fullmatch(r"ht_dev_[A-Za-z0-9_-]{30,}", secret), secret
    assert secret not in page.url
    page.locator("code.secret").click()  # one click selects it all, ready to copy
    assert page.evaluate("window.getSelection().toString()").strip() == secret
    page.screenshot(path=str(shots / "key-created.png"), full_page=True)
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {secret}"}, timeout=10) as api:
        assert api.get("/api/v1/runs").status_code == 200

        page.get_by_role("link", name="Done, back to Environment").click()
        expect(keys).to_have_count(2)
        assert secret not in page.content()

        # Revoke it, after a confirmation: refused at once.
        prefix = secret[: len("ht_dev_") + 4]
        page.get_by_role("link", name=f"Revoke {prefix}…").click()
        expect(page.get_by_role("heading", name="Revoke this key?")).to_be_visible()
        page.screenshot(path=str(shots / "key-revoke-confirm.png"), full_page=True)
        assert api.get("/api/v1/runs").status_code == 200
        page.get_by_role("button", name="Revoke key").click()
        expect(page.get_by_role("status")).to_contain_text("Key revoked")
        assert api.get("/api/v1/runs").status_code == 401
    expect(page.locator("table.keys tr.revoked")).to_have_count(1)
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {handle.secret_key}"}, timeout=10) as api:
        assert api.get("/api/v1/runs").status_code == 200  # dev's own key still works

    # Add a member: a new user, and their one-time login link, shown once.
    page.get_by_label("Add a member by email").fill("ada@example.com")
    page.get_by_role("button", name="Add member").click()
    expect(page.get_by_role("heading", name="Send ada@example.com this login link")).to_be_visible()
    link = page.locator("code.secret").inner_text().strip()
    assert link.startswith(f"{base}/login?token=htl_"), link
    page.screenshot(path=str(shots / "member-added.png"), full_page=True)
    page.get_by_role("link", name="Done, back to Environment").click()
    members = page.locator("table.members tbody tr")
    expect(members.filter(has_text="ada@example.com")).to_contain_text("member")
    page.screenshot(path=str(shots / "environment-after.png"), full_page=True)

    # Ada signs in by the link: she sees the page and no buttons.
    ada = chromium.new_context(viewport={"width": 1280, "height": 800}).new_page()
    ada.goto(link)
    ada.goto(environment)
    expect(ada.get_by_text("Only admins create and revoke keys.")).to_be_visible()
    expect(ada.get_by_role("button", name="Create key")).to_have_count(0)
    ada.screenshot(path=str(shots / "environment-member.png"), full_page=True)

    # Remove her, after a confirmation: her next request no longer finds the project.
    page.get_by_role("link", name="Remove ada@example.com").click()
    page.get_by_role("button", name="Remove member").click()
    expect(page.get_by_role("status")).to_contain_text("Member removed")
    expect(members.filter(has_text="ada@example.com")).to_have_count(0)
    ada.reload()
    expect(ada.get_by_role("heading", name="Not found")).to_be_visible()
    ada.context.close()

    for name, options in (
        ("dark", {"color_scheme": "dark"}),
        ("phone", {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True}),
        ("phone-dark", {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "color_scheme": "dark"}),
    ):
        other = signed_in(chromium, handle, **options)
        other.goto(environment)
        width = other.evaluate("document.documentElement.scrollWidth")
        assert width <= other.viewport_size["width"], f"the page scrolls sideways on {name}: {width}px"
        other.screenshot(path=str(shots / f"environment-{name}.png"), full_page=True)
        if name == "phone":  # a long secret wraps in its box
            other.get_by_role("button", name="Create key").click()
            expect(other.locator("code.secret")).to_be_visible()
            width = other.evaluate("document.documentElement.scrollWidth")
            assert width <= other.viewport_size["width"], f"the new key scrolls sideways on {name}: {width}px"
            other.screenshot(path=str(shots / f"key-created-{name}.png"), full_page=True)
        other.context.close()
    page.context.close()
