"""Suite-wide hooks."""

from __future__ import annotations

from collections import Counter

import pytest

# The reason tests/store/conftest.py gives when it skips the PostgreSQL variants.
_POSTGRES_SKIP = "PostgreSQL not reachable at "


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """A skipped backend must not pass unnoticed among the green dots: say it in one line."""
    reasons: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        if isinstance(longrepr, tuple) and _POSTGRES_SKIP in str(longrepr[2]):
            reasons[str(longrepr[2]).removeprefix("Skipped: ")] += 1
    for reason, count in reasons.items():
        terminalreporter.write_sep(
            "!", f"{reason} — {count} PostgreSQL store tests were skipped", yellow=True, bold=True
        )
