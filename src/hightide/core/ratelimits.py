"""A queue's rate limit: at most ``limit`` runs start in any window of ``period`` seconds.

Declared on a queue (``queue(name="openai", rate_limit={"limit": 60, "period": "1m"})``), checked
here once for the SDK and for the manifest a worker registers, and enforced by the claim
(``store.claims``). ``per="concurrency_key"`` gives each key value its own window."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hightide.core.durations import parse_duration
from hightide.core.limits import MAX_INT
from hightide.errors import ValidationError

PER_KEY = "concurrency_key"
MIN_PERIOD = 0.001
"""The shortest window: a millisecond (a shorter one could not hold a start)."""


@dataclass(frozen=True)
class RateLimit:
    limit: int
    period: float  # seconds
    per: str | None = None  # None: one window for the queue; PER_KEY: one per concurrency key

    @property
    def per_key(self) -> bool:
        return self.per == PER_KEY

    def to_dict(self) -> dict[str, Any]:
        return {"limit": self.limit, "period": self.period, "per": self.per}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RateLimit:
        """What ``to_dict`` made (the API's ``rate_limit``), already checked."""
        return cls(int(data["limit"]), float(data["period"]), data.get("per"))

    def describe(self) -> str:
        """``60 per 1m``, ``10 per 1s per concurrency key``."""
        each = " per concurrency key" if self.per_key else ""
        return f"{self.limit:,} per {_short(self.period)}{each}"


def _short(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def parse_rate_limit(value: Any, where: str) -> RateLimit | None:
    """``{"limit": int >= 1, "period": duration, "per"?: "concurrency_key"}`` (or ``None``), as a
    ``RateLimit``; ``ValidationError`` naming ``where`` otherwise."""
    if value is None:
        return None
    if isinstance(value, RateLimit):
        value = value.to_dict()
    if not isinstance(value, dict):
        raise ValidationError(f"{where}: expected {{'limit': int, 'period': '1m', 'per'?: '{PER_KEY}'}}")
    unknown = set(value) - {"limit", "period", "per"}
    if unknown:
        raise ValidationError(f"{where}: unknown option(s) {sorted(unknown)}; expected limit, period and per")
    limit = value.get("limit")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_INT:
        raise ValidationError(f"{where}.limit: expected a whole number from 1 to {MAX_INT}")
    if value.get("period") is None:
        raise ValidationError(f"{where}.period: required, e.g. '1m' or 60 (seconds)")
    period = parse_duration(value["period"], field=f"{where}.period")
    if period < MIN_PERIOD:
        raise ValidationError(f"{where}.period: expected at least {MIN_PERIOD} s")
    per = value.get("per")
    if per is not None and per != PER_KEY:
        raise ValidationError(f"{where}.per: expected '{PER_KEY}' or nothing, got {per!r}")
    return RateLimit(limit, period, per)
