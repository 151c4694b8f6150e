"""Browser tests: Playwright for Python driving Debian's Chromium (never a downloaded browser)
against real ``hightide dev`` and ``hightide server`` processes. Screenshots of each page are saved
under ``tests/browser/artifacts/`` (git-ignored) for a person to look at.

They skip, saying why, when Playwright or Chromium is missing (``.ci/run`` installs both)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The acceptance suite's fixtures: real `hightide` processes in their own sessions.
from tests.acceptance.conftest import Dev, background, dev, project, scaffold, server  # noqa: F401
from tests.support import login_link

CHROMIUM = Path(os.environ.get("HIGHTIDE_TEST_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One Chromium per module. Playwright's sync API runs an event loop in this thread while it
    is started, so it must stop before the async tests of other modules run (module scope, not
    session)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed: pip install -e '.[dev]'")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set HIGHTIDE_TEST_CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Path:
    """The folder for this test's screenshots."""
    folder = ARTIFACTS / request.node.name.replace("[", "-").replace("]", "")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def dashboard_link(output: str, port: int) -> str:
    found = re.search(rf"Dashboard: (http://127\.0\.0\.1:{port}/login\?token=htl_[A-Za-z0-9_-]+)", output)
    assert found, output
    return found.group(1)


def dashboard_link_for(handle: Dev) -> str:
    """A new link, as an admin would print it for the same dev database."""
    return login_link(str(handle.root / ".hightide" / "dev.db"), handle.api_url)


def signed_in(chromium: Any, handle: Dev, **options: Any) -> Any:
    """A new page of a new browser context (``options``: Playwright's context options; 1280x800 by
    default), signed in as the dev admin and showing the Runs page: by a fresh login link the first
    time for ``handle``, then with that sign-in's cookies (as a person's second tab would be)."""
    runs = f"{handle.api_url}/projects/default/env/dev/runs"
    kept = {} if handle.browser_session is None else {"storage_state": handle.browser_session}
    context = chromium.new_context(**({"viewport": {"width": 1280, "height": 800}} | kept | options))
    page = context.new_page()
    page.goto(runs if kept else dashboard_link_for(handle))
    page.wait_for_url(runs)
    if not kept:
        handle.browser_session = context.storage_state()
    return page
