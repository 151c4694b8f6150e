"""Browser tests: Playwright for Python driving Debian's Chromium (never a downloaded browser)
against real ``hightide dev`` and ``hightide server`` processes. Screenshots of each page are saved
under ``tests/browser/artifacts/`` (git-ignored) for a person to look at.

They skip, saying why, when Playwright or Chromium is missing (``.ci/run`` installs both)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The acceptance suite's fixtures: real `hightide` processes in their own sessions.
from tests.acceptance.conftest import background, dev, project, server  # noqa: F401

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
