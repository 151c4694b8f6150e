"""Schedules through a real server and worker on both backends: declarative schedules synced from
the worker's version, imperative ones made, changed and removed with the SDK and the CLI, the
errors a user meets, and one real minute boundary end to end."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from hightide import Client, ConflictError, NotFoundError, RunStatus, ValidationError
from hightide.engine.schedules import FIRE_AHEAD
from tests.integration.conftest import CLI, Stack
from tests.support import assert_eventually, wait_finished


@pytest.fixture
def made(client: Client) -> Iterator[list[str]]:
    """Ids of the schedules a test creates, deleted after it (the stack is shared)."""
    ids: list[str] = []
    yield ids
    for schedule_id in ids:
        try:
            client.schedules.delete(schedule_id)
        except NotFoundError:
            pass


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_declared_schedules_are_synced_for_their_environments(client: Client) -> None:
    declared = {s.task: s for s in client.schedules.list(kind="declarative")}
    assert "scheduled-prod-only" not in declared  # declared for prod only; the worker is on dev
    daily = declared["scheduled-declared"]
    assert (daily.cron, daily.timezone, daily.kind, daily.active) == ("0 3 29 2 *", "Europe/Paris", "declarative", True)
    assert daily.next_run_at is not None and len(daily.upcoming) == 5
    paris = daily.next_run_at.astimezone(ZoneInfo("Europe/Paris"))
    assert (paris.month, paris.day, paris.hour) == (2, 29, 3)
    # Declared in code: it cannot be deleted or changed here, only deactivated.
    with pytest.raises(ConflictError, match="declared by task 'scheduled-declared'"):
        client.schedules.delete(daily.id)
    with pytest.raises(ConflictError):
        client.schedules.update(daily.id, cron="* * * * *")
    assert not client.schedules.deactivate(daily.id).active
    assert client.schedules.activate(daily.id).active


def test_create_update_in_place_by_key_and_remove(client: Client, made: list[str]) -> None:
    user = unique("user")
    first = client.schedules.create(
        task="scheduled-echo",
        cron="0 9 * * MON-FRI",
        timezone="America/New_York",
        external_id=user,
        deduplication_key=f"{user}-report",
    )
    made.append(first.id)
    assert (first.task, first.cron, first.timezone, first.external_id, first.kind) == (
        "scheduled-echo",
        "0 9 * * MON-FRI",
        "America/New_York",
        user,
        "imperative",
    )
    assert first.id.startswith("sched_") and len(first.upcoming) == 5
    assert all(u.astimezone(ZoneInfo("America/New_York")).hour == 9 for u in first.upcoming)

    again = client.schedules.create(task="scheduled-echo", cron="30 8 * * *", deduplication_key=f"{user}-report")
    assert again.id == first.id and (again.cron, again.timezone) == ("30 8 * * *", "UTC")
    mine = [s for s in client.schedules.list(task="scheduled-echo") if s.deduplication_key == f"{user}-report"]
    assert [s.id for s in mine] == [first.id]

    changed = client.schedules.update(first.id, cron="0 12 L * *")
    assert changed.cron == "0 12 L * *" and changed.next_run_at is not None
    assert changed.next_run_at.hour == 12
    assert client.schedules.retrieve(first.id) == changed

    off = client.schedules.deactivate(first.id)
    assert (off.active, off.next_run_at, off.upcoming) == (False, None, [])
    assert client.schedules.activate(first.id).active

    client.schedules.delete(first.id)
    with pytest.raises(NotFoundError):
        client.schedules.retrieve(first.id)


def test_mistakes_are_refused_with_what_to_do(client: Client) -> None:
    with pytest.raises(ValidationError, match="has 4 field"):
        client.schedules.create(task="scheduled-echo", cron="0 9 * *")
    with pytest.raises(ValidationError, match="is not an IANA timezone"):
        client.schedules.create(task="scheduled-echo", cron="0 9 * * *", timezone="Paris")
    with pytest.raises(NotFoundError, match="task 'no-such-task' is not registered"):
        client.schedules.create(task="no-such-task", cron="0 9 * * *")
    with pytest.raises(NotFoundError):
        client.schedules.activate("sched_nope")
    zones = client.schedules.timezones()
    assert "Europe/Paris" in zones and "UTC" in zones


def test_the_cli_lists_creates_deactivates_and_deletes(stack: Stack, client: Client, made: list[str]) -> None:
    env = {**os.environ, "HIGHTIDE_API_URL": stack.url, "HIGHTIDE_SECRET_KEY": stack.key}

    def cli(*args: str) -> str:
        out = subprocess.run([*CLI, "schedules", *args], capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    user = unique("cli")
    created = json.loads(
        cli(
            "create",
            "--task",
            "scheduled-echo",
            "--cron",
            "*/15 * * * *",
            "--tz",
            "Europe/Paris",
            "--external-id",
            user,
            "--json",
        )
    )
    made.append(created["id"])
    assert (created["cron"], created["timezone"], created["external_id"]) == ("*/15 * * * *", "Europe/Paris", user)
    assert created["id"] in cli("list")  # the table
    listed = json.loads(cli("list", "--task", "scheduled-echo", "--json"))
    assert created["id"] in [s["id"] for s in listed]
    shown = cli("get", created["id"])
    assert created["id"] in shown and "*/15 * * * *" in shown and "next runs:" in shown
    moved = json.loads(cli("update", created["id"], "--cron", "0 8 * * 1", "--tz", "UTC", "--json"))
    assert (moved["cron"], moved["timezone"], moved["external_id"]) == ("0 8 * * 1", "UTC", user)
    assert json.loads(cli("deactivate", created["id"], "--json"))["active"] is False
    assert "active" in cli("activate", created["id"])
    assert "deleted" in cli("delete", created["id"])
    assert created["id"] not in [s.id for s in client.schedules.list()]

    bad = subprocess.run(
        [*CLI, "schedules", "create", "--task", "scheduled-echo", "--cron", "nope"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode != 0 and "cron" in bad.stderr + bad.stdout and "Traceback" not in bad.stderr


@pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
def test_a_schedule_fires_on_the_minute_and_its_run_gets_the_scheduled_payload(client: Client, made: list[str]) -> None:
    """The one test that waits for a real minute boundary (at most a minute of wall time)."""
    user = unique("minute")
    schedule = client.schedules.create(task="scheduled-echo", cron="* * * * *", external_id=user)
    made.append(schedule.id)
    assert schedule.next_run_at is not None
    tick = schedule.next_run_at.timestamp()
    assert 0 < tick - time.time() <= 60

    def fired() -> object:
        runs = list(client.runs.list(tag=f"schedule:{schedule.id}"))
        assert runs, f"no run yet for the tick at {schedule.next_run_at}"
        return runs

    [run] = assert_eventually(fired, timeout=tick - time.time() + 10, interval=0.2, what="the tick's run")
    # Made up to FIRE_AHEAD (5 s) before the minute, and started on it, not before.
    assert tick - FIRE_AHEAD - 1 <= run.created_at.timestamp() <= tick + 2.5
    done = wait_finished(client, run.id, timeout=tick - time.time() + 30)
    client.schedules.deactivate(schedule.id)  # no second tick while the test finishes
    assert done.started_at is not None and tick <= done.started_at.timestamp() <= tick + 2.5
    assert done.status == RunStatus.COMPLETED
    out = done.output
    assert out["type"] == "ScheduledPayload"  # the task got the model, not a dict
    assert datetime.fromisoformat(out["timestamp"]) == datetime.fromtimestamp(tick, UTC)
    assert (out["schedule_id"], out["external_id"], out["timezone"], out["last_timestamp"]) == (
        schedule.id,
        user,
        "UTC",
        None,
    )
    assert [datetime.fromisoformat(u).timestamp() for u in out["upcoming"]] == [tick + 60 * k for k in range(1, 6)]
    assert client.schedules.retrieve(schedule.id).last_run_at == datetime.fromtimestamp(tick, UTC)
