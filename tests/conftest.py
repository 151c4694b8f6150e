"""Suite-wide hooks."""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator

import pytest

# The reason tests/store/conftest.py gives when it skips the PostgreSQL variants.
_POSTGRES_SKIP = "PostgreSQL not reachable at "


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> Generator[None]:
    """A skipped backend must not pass unnoticed: say so in one line, after the skip list and
    right above the final counts."""
    yield
    reasons: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        if isinstance(longrepr, tuple) and _POSTGRES_SKIP in str(longrepr[2]):
            reasons[str(longrepr[2]).removeprefix("Skipped: ")] += 1
    for reason, count in reasons.items():
        terminalreporter.write_sep("!", f"{reason} — {count} PostgreSQL tests were skipped", yellow=True, bold=True)
