"""The Runs page's filters: read from the query string once, for the page, its live stream and its
bulk actions alike (so that they cannot disagree about what "these filters" means).

Every filter is a condition the store's list query meets with the ``(environment, created_at)``
index (equalities and a range on ``created_at``: no function of a column, no OFFSET), and that the
live stream checks on a changed run in Python (``matches``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from urllib.parse import urlencode

from hightide.core.states import RunStatus
from hightide.errors import ValidationError
from hightide.store.records import Run, RunFilter

PERIODS = {"1h": ("Last hour", 3600), "24h": ("Last 24 hours", 86400), "7d": ("Last 7 days", 7 * 86400)}
PERIODS["30d"] = ("Last 30 days", 30 * 86400)
FIELDS = ("status", "task", "tag", "version", "period", "from", "to")


def _day(name: str, value: str) -> float | None:
    """Midnight UTC of ``YYYY-MM-DD``."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise ValidationError(
            f"{name}: expected a date like 2026-12-01, not {value!r}", details={"field": name}
        ) from exc
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class RunsQuery:
    """What the Runs page was asked for: its filters (as typed, for the form and the links) and
    the cursor of the page."""

    values: dict[str, str]
    cursor: str | None

    @classmethod
    def parse(cls, params: dict[str, str]) -> RunsQuery:
        values = {name: params.get(name, "").strip() for name in FIELDS}
        if values["status"] and values["status"] not in RunStatus.__members__:
            known = ", ".join(RunStatus.__members__)
            raise ValidationError(f"status: expected one of {known}", details={"field": "status"})
        if values["period"] and values["period"] not in PERIODS:
            periods = ", ".join(PERIODS)
            raise ValidationError(f"period: expected one of {periods}", details={"field": "period"})
        for name in ("from", "to"):
            _day(name, values[name])  # a wrong date is a readable error now, not later
        return cls(values, params.get("cursor") or None)

    @property
    def kept(self) -> dict[str, str]:
        """The filters given (the query string of a link to the same filtered list)."""
        return {name: value for name, value in self.values.items() if value}

    @property
    def filtered(self) -> bool:
        return bool(self.kept)

    @property
    def first_page(self) -> bool:
        return self.cursor is None

    def run_filter(self, now: float) -> RunFilter:
        v = self.values
        starts = [t for t in (_day("from", v["from"]), now - PERIODS[v["period"]][1] if v["period"] else None) if t]
        to = _day("to", v["to"])
        return RunFilter(
            statuses=(v["status"],) if v["status"] else (),
            task_ids=(v["task"],) if v["task"] else (),
            tag=v["tag"] or None,
            version=v["version"] or None,
            created_from=max(starts) if starts else None,
            created_to=to + 86400 if to is not None else None,  # "to" is a whole day, included
        )

    def url(self, base: str, **extra: str | None) -> str:
        """``base`` with these filters and ``extra`` (a cursor, say) as its query string."""
        params = {**self.kept, **{k: v for k, v in extra.items() if v}}
        return f"{base}?{urlencode(params)}" if params else base


def matches(run: Run, flt: RunFilter) -> bool:
    """Whether ``run`` is one the list query of ``flt`` returns (what the live stream checks)."""
    return (
        (not flt.statuses or run.status.value in flt.statuses)
        and (not flt.task_ids or run.task_id in flt.task_ids)
        and (flt.tag is None or flt.tag in run.tags)
        and (flt.version is None or run.version == flt.version)
        and (flt.created_from is None or run.created_at >= flt.created_from)
        and (flt.created_to is None or run.created_at < flt.created_to)
        and (flt.parent_run_id is None or run.parent_run_id == flt.parent_run_id)
    )


__all__ = ["FIELDS", "PERIODS", "RunsQuery", "matches"]
