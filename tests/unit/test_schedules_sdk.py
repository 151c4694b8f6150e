"""``@schedules.task``: the schedule is checked at import and travels in the task's manifest entry,
and the task receives a ``ScheduledPayload``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from hightide import ScheduledPayload, Task, schedules
from hightide.errors import ConfigError
from hightide.sdk.task import registry


@pytest.fixture(autouse=True)
def clean_registry() -> Iterator[None]:
    before = dict(registry)
    yield
    registry.clear()
    registry.update(before)


def test_a_pattern_alone_is_utc_in_every_environment() -> None:
    @schedules.task(id="sched-daily", cron="0  9 * * *", retry={"max_attempts": 1})
    async def daily(payload: ScheduledPayload) -> None: ...

    assert isinstance(daily, Task)
    entry = daily.manifest()
    assert entry["schedule"] == {"cron": "0 9 * * *", "timezone": "UTC", "environments": None}
    assert entry["retry"]["max_attempts"] == 1  # @task's options apply
    assert entry["payload_schema"]["title"] == "ScheduledPayload"


def test_a_full_declaration_with_a_timezone_and_environments() -> None:
    @schedules.task(
        id="sched-paris", cron={"pattern": "0 9 L * *", "timezone": "Europe/Paris", "environments": ["prod"]}
    )
    def paris(payload) -> None:  # type: ignore[no-untyped-def]
        ...

    assert paris.manifest()["schedule"] == {"cron": "0 9 L * *", "timezone": "Europe/Paris", "environments": ["prod"]}
    # Not annotated: the payload is a ScheduledPayload all the same.
    got = paris.validate_payload(
        {
            "timestamp": "2027-01-31T09:00:00+01:00",
            "last_timestamp": None,
            "timezone": "Europe/Paris",
            "schedule_id": "sched_1",
            "external_id": None,
            "upcoming": ["2027-02-28T09:00:00+01:00"],
        }
    )
    assert isinstance(got, ScheduledPayload)
    assert got.timestamp == datetime(2027, 1, 31, 8, 0, tzinfo=UTC)


def test_a_plain_task_declares_no_schedule() -> None:
    from hightide import task

    @task(id="sched-none")
    async def plain(payload: dict) -> None: ...

    assert "schedule" not in plain.manifest()


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        ("0 9 * *", r"has 4 field\(s\)"),
        ({"pattern": "0 9 * * *", "timezone": "Nowhere/City"}, "is not an IANA timezone"),
        ({"pattern": "0 9 * * *", "tz": "UTC"}, "unknown: tz"),
        ({"timezone": "UTC"}, "cron is a pattern or"),
        ({"pattern": "0 9 * * *", "environments": "prod"}, "a list of environment names"),
    ],
)
def test_a_wrong_schedule_fails_at_import(cron: object, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as caught:
        schedules.task(id="sched-bad", cron=cron)  # type: ignore[arg-type]
    assert "sched-bad" in str(caught.value)
