"""Declarative schedules under ``hightide dev``: synced when dev registers the project's tasks, kept
as they are (a deactivation included) across a reload that does not change them, changed by an
edit, and gone when the task stops declaring one; ``hightide schedules`` shows them."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

from tests.acceptance.conftest import Dev, hightide
from tests.support import assert_eventually

REPORT = """
    from hightide import ScheduledPayload, schedules, task

    @schedules.task(id="report", cron={cron})
    async def report(payload: ScheduledPayload) -> str:
        return payload.timestamp.isoformat()

    @task(id="other-{n}")
    async def other(payload: dict) -> None:
        return None
"""

PLAIN = """
    from hightide import task

    @task(id="report")
    async def report(payload: dict) -> None:
        return None
"""


def test_dev_syncs_declared_schedules_on_start_and_on_each_reload(
    project: Callable[..., Path], dev: Callable[..., Dev]
) -> None:
    paris = '{"pattern": "0 9 * * MON-FRI", "timezone": "Europe/Paris"}'
    root = project({"trigger/report.py": REPORT.format(cron=paris, n=1)})
    server = dev(root)
    [daily] = server.client.schedules.list(kind="declarative")
    assert (daily.task, daily.cron, daily.timezone, daily.active) == ("report", "0 9 * * MON-FRI", "Europe/Paris", True)

    listed = hightide("schedules", "list", "--json", cwd=root)  # dev.env gives the CLI its server and key
    assert listed.returncode == 0, listed.stderr
    assert [s["id"] for s in json.loads(listed.stdout)] == [daily.id]

    # A reload that leaves the schedule alone keeps it, and keeps a user's deactivation.
    server.client.schedules.deactivate(daily.id)
    (root / "trigger" / "report.py").write_text(textwrap.dedent(REPORT.format(cron=paris, n=2)))
    server.proc.wait_for_output("registered", count=2)
    kept = server.client.schedules.retrieve(daily.id)
    assert (kept.cron, kept.active) == ("0 9 * * MON-FRI", False)

    # An edit of the pattern changes the schedule in place.
    (root / "trigger" / "report.py").write_text(textwrap.dedent(REPORT.format(cron='"*/10 * * * *"', n=3)))
    server.proc.wait_for_output("registered", count=3)
    changed = server.client.schedules.retrieve(daily.id)
    assert (changed.cron, changed.timezone) == ("*/10 * * * *", "UTC")

    # The task stops declaring one: its schedule goes.
    (root / "trigger" / "report.py").write_text(textwrap.dedent(PLAIN))
    server.proc.wait_for_output("registered", count=4)
    assert_eventually(lambda: server.client.schedules.list() == [], what="the declarative schedule to go")
