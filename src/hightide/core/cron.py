"""Cron patterns in a timezone: validation and ticks, with time passed in (no clock here).

Five fields (minute, hour, day of month, month, day of week), as cron writes them, with ``L`` (the
last day of the month, or ``5L``: its last Friday), ``W``, ``#``, names (``MON``, ``JAN``) and
ranges; parsed and evaluated by ``cronsim``. Ticks are computed in the schedule's IANA timezone and
handled across daylight saving time as cron does: a time the clocks skip (02:30 on the spring-forward
night in Europe/Paris) fires at the first minute after the gap, and a time they repeat (02:30 on the
fall-back night) fires once, at its first occurrence; patterns with a wildcard or a step in the hour
(``*/30 * * * *``) fire in both hours of the repeated hour, like cron.

Times are float seconds since the epoch, as the store keeps them.

>>> cron = parse_cron("0 9 * * MON-FRI", "Europe/Paris")
>>> cron.next_after(now)          # the next weekday 09:00 in Paris, as epoch seconds
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cronsim import CronSim, CronSimError

from hightide.errors import ValidationError

MAX_PATTERN_LENGTH = 256
UPCOMING = 5
"""How many upcoming ticks a scheduled run's payload lists."""


@dataclass(frozen=True)
class Cron:
    """A checked cron ``pattern`` evaluated in ``timezone`` (an IANA name, e.g. ``"Europe/Paris"``)."""

    pattern: str
    timezone: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def next_after(self, t: float) -> float:
        """The first tick strictly after ``t``."""
        return next(iter(self._ticks(t, reverse=False)))

    def upcoming(self, t: float, n: int = UPCOMING) -> list[float]:
        """The ``n`` ticks after ``t``, in order."""
        ticks = self._ticks(t, reverse=False)
        return [next(ticks) for _ in range(n)]

    def latest_at_or_before(self, t: float) -> float:
        """The latest tick at ``t`` or before it (a pattern always has one within a few years)."""
        # cronsim's reverse iteration starts strictly before its start: start a second later, so
        # that a tick exactly at ``t`` counts. Ticks are whole minutes, so nothing in (t, t+1) is one.
        tick = next(iter(self._ticks(t + 1, reverse=True)))
        return tick if tick <= t else next(iter(self._ticks(tick, reverse=True)))

    def _ticks(self, t: float, *, reverse: bool) -> _Ticks:
        start = datetime.fromtimestamp(t, UTC).astimezone(self.zone)
        if not reverse:  # whole seconds: a start at 09:00:00.5 must not yield 09:00:00
            start = start.replace(microsecond=0)
        return _Ticks(CronSim(self.pattern, start, reverse=reverse))


class _Ticks:
    """cronsim's datetimes as epoch seconds."""

    def __init__(self, sim: CronSim) -> None:
        self._sim = sim

    def __iter__(self) -> _Ticks:
        return self

    def __next__(self) -> float:
        return next(self._sim).timestamp()


def parse_cron(pattern: object, timezone: object = "UTC", *, field: str = "cron") -> Cron:
    """Check a 5-field cron ``pattern`` and an IANA ``timezone``; raise ``ValidationError`` naming
    ``field`` (or ``timezone``) with what is wrong and what is expected.

    >>> parse_cron("0 9 * * *", "Europe/Paris").pattern
    '0 9 * * *'
    """
    tz = check_timezone(timezone)
    if not isinstance(pattern, str) or not pattern.strip():
        raise ValidationError(
            f"{field}: expected a cron pattern of 5 fields, e.g. '0 9 * * *' (09:00 every day)",
            details={"field": field},
        )
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValidationError(
            f"{field}: a cron pattern is at most {MAX_PATTERN_LENGTH} characters", details={"field": field}
        )
    normal = " ".join(pattern.split())
    fields = normal.split(" ")
    if len(fields) != 5:
        raise ValidationError(
            f"{field}: {pattern!r} has {len(fields)} field(s); a cron pattern has 5: minute hour "
            "day-of-month month day-of-week, e.g. '*/5 * * * *' (every 5 minutes)",
            details={"field": field, "pattern": pattern},
        )
    try:
        CronSim(normal, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise ValidationError(
            f"{field}: {pattern!r} is not a valid cron pattern ({str(exc).lower()}); fields are minute 0-59, "
            "hour 0-23, day-of-month 1-31 or L, month 1-12 or JAN-DEC, day-of-week 0-7 or SUN-SAT",
            details={"field": field, "pattern": pattern},
        ) from exc
    return Cron(normal, tz)


def check_timezone(timezone: object, *, field: str = "timezone") -> str:
    """``timezone`` if it is an IANA timezone name (``"UTC"``, ``"Europe/Paris"``), else ``ValidationError``."""
    if isinstance(timezone, str) and timezone in _zones():
        return timezone
    if isinstance(timezone, str) and timezone.upper() == "UTC":
        return "UTC"
    shown = timezone if isinstance(timezone, str) else type(timezone).__name__
    raise ValidationError(
        f"{field}: {shown!r} is not an IANA timezone; use a name such as 'UTC', 'Europe/Paris' or "
        "'America/New_York' (GET /api/v1/timezones lists them)",
        details={"field": field},
    )


def timezones() -> list[str]:
    """Every IANA timezone name this system knows, sorted (``UTC`` included)."""
    return sorted(_zones())


@functools.cache
def _zones() -> frozenset[str]:
    names = set(available_timezones()) | {"UTC"}
    valid = set()
    for name in names:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
        valid.add(name)
    return frozenset(valid)


def iso(t: float, timezone: str = "UTC") -> str:
    """``t`` as ISO 8601 in ``timezone`` (with its offset)."""
    return datetime.fromtimestamp(t, UTC).astimezone(ZoneInfo(timezone)).isoformat()
