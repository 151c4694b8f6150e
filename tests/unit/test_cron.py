"""Cron ticks in a timezone, with the clock given: DST in Europe/Paris, ``L``, every minute, and the
errors a person sees for a wrong pattern or timezone."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from hightide.core.cron import check_timezone, iso, parse_cron, timezones
from hightide.errors import ValidationError

PARIS = ZoneInfo("Europe/Paris")


def at(*parts: int, tz: ZoneInfo = PARIS, fold: int = 0) -> float:
    return datetime(*parts, tzinfo=tz, fold=fold).timestamp()  # type: ignore[misc]


def local(t: float, tz: ZoneInfo = PARIS) -> str:
    return datetime.fromtimestamp(t, UTC).astimezone(tz).isoformat()


def test_every_minute_ticks_on_each_minute_strictly_after() -> None:
    cron = parse_cron("* * * * *")
    now = at(2026, 12, 2, 10, 0, 0, tz=ZoneInfo("UTC"))
    assert cron.next_after(now) == now + 60  # a tick exactly now is not "after"
    assert cron.next_after(now + 0.5) == now + 60
    assert cron.next_after(now + 59.9) == now + 60
    assert cron.upcoming(now, 3) == [now + 60, now + 120, now + 180]
    assert cron.latest_at_or_before(now) == now
    assert cron.latest_at_or_before(now + 59.9) == now
    assert cron.latest_at_or_before(now - 0.1) == now - 60


def test_daily_in_paris_is_nine_paris_time_whatever_the_offset() -> None:
    cron = parse_cron("0 9 * * *", "Europe/Paris")
    winter = cron.next_after(at(2026, 1, 15, 12, 0))
    summer = cron.next_after(at(2026, 7, 15, 12, 0))
    assert local(winter) == "2026-01-16T09:00:00+01:00"
    assert local(summer) == "2026-07-16T09:00:00+02:00"


def test_spring_forward_a_skipped_time_fires_once_right_after_the_gap() -> None:
    # 2026-03-29 in Paris: 02:00 jumps to 03:00; 02:30 does not exist that night.
    cron = parse_cron("30 2 * * *", "Europe/Paris")
    ticks = cron.upcoming(at(2026, 3, 28, 12, 0), 3)
    assert [local(t) for t in ticks] == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]
    # Hourly ticks: there is no 02:xx that night, so 01:00 is followed by 03:00 (an hour later).
    hourly = parse_cron("0 * * * *", "Europe/Paris").upcoming(at(2026, 3, 29, 0, 30), 3)
    assert [local(t) for t in hourly] == [
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T04:00:00+02:00",
    ]
    assert hourly[1] - hourly[0] == 3600


def test_fall_back_a_repeated_time_fires_once_and_intervals_fire_in_both_hours() -> None:
    # 2026-10-25 in Paris: 03:00 goes back to 02:00; 02:30 happens twice.
    daily = parse_cron("30 2 * * *", "Europe/Paris").upcoming(at(2026, 10, 24, 12, 0), 2)
    assert [local(t) for t in daily] == ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
    halves = parse_cron("*/30 * * * *", "Europe/Paris").upcoming(at(2026, 10, 25, 1, 45), 5)
    assert [local(t) for t in halves] == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T02:30:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]
    assert all(b - a == 1800 for a, b in itertools.pairwise(halves))  # no drift, no gap


def test_latest_tick_at_or_before_across_the_fall_back_night() -> None:
    cron = parse_cron("30 2 * * *", "Europe/Paris")
    assert local(cron.latest_at_or_before(at(2026, 10, 25, 12, 0))) == "2026-10-25T02:30:00+02:00"
    assert local(cron.latest_at_or_before(at(2026, 10, 25, 2, 29))) == "2026-10-24T02:30:00+02:00"


def test_last_day_of_month_and_last_weekday() -> None:
    last = parse_cron("0 0 L * *", "UTC").upcoming(at(2028, 1, 15, 0, 0, tz=ZoneInfo("UTC")), 3)
    assert [local(t, ZoneInfo("UTC"))[:10] for t in last] == ["2028-01-31", "2028-02-29", "2028-03-31"]
    friday = parse_cron("0 18 * * 5L", "Europe/Paris").next_after(at(2026, 12, 1, 0, 0))
    assert local(friday) == "2026-12-25T18:00:00+01:00"


def test_names_and_spacing_are_accepted_and_normalised() -> None:
    cron = parse_cron("  0  9 * *   MON-FRI ", "UTC")
    assert cron.pattern == "0 9 * * MON-FRI"
    saturday = at(2026, 12, 5, 12, 0, tz=ZoneInfo("UTC"))
    assert local(cron.next_after(saturday), ZoneInfo("UTC")) == "2026-12-07T09:00:00+00:00"


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        ("", "expected a cron pattern of 5 fields"),
        ("0 9 * *", "has 4 field(s)"),
        ("0 0 9 * * *", "has 6 field(s)"),  # no seconds field
        ("@daily", "has 1 field(s)"),
        ("61 * * * *", "bad minute"),
        ("0 25 * * *", "bad hour"),
        ("0 0 31 2 *", "bad day-of-month"),
        ("a b c d e", "not a valid cron pattern"),
        (42, "expected a cron pattern"),
    ],
)
def test_invalid_patterns_say_what_is_wrong(pattern: object, says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_cron(pattern, "UTC")
    assert says in str(caught.value)
    assert caught.value.details["field"] == "cron"


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "paris", "+02:00", None])
def test_invalid_timezones_name_the_field_and_a_fix(zone: object) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_cron("0 9 * * *", zone)
    assert "is not an IANA timezone" in str(caught.value)
    assert "Europe/Paris" in str(caught.value)
    assert caught.value.details["field"] == "timezone"


def test_timezones_lists_iana_names() -> None:
    names = timezones()
    assert "UTC" in names and "Europe/Paris" in names and "America/New_York" in names
    assert names == sorted(names)
    assert check_timezone("Asia/Tokyo") == "Asia/Tokyo"


def test_iso_has_the_offset_of_the_timezone() -> None:
    assert iso(at(2026, 7, 1, 9, 0), "Europe/Paris") == "2026-07-01T09:00:00+02:00"
    assert iso(at(2026, 7, 1, 9, 0), "UTC") == "2026-07-01T07:00:00+00:00"
