"""Retry policy: exponential backoff with jitter and caps (SPEC §2, task option ``retry``)."""

from __future__ import annotations

import random as _random
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from hightide.core.durations import parse_duration
from hightide.core.failures import FailureKind
from hightide.core.limits import check_duration
from hightide.core.machines import check_machine
from hightide.core.states import RunEvent
from hightide.errors import ValidationError

MAX_ATTEMPTS = 100
MAX_RETRY_DELAY = 365 * 86400.0  # a catch_error decision further out than this is cut to it


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    factor: float = 2.0
    min_timeout: float = 1.0
    max_timeout: float = 60.0
    randomize: bool = True
    out_of_memory: dict[str, str] | None = None  # {"machine": preset}: where an out-of-memory failure retries

    def __post_init__(self) -> None:
        _check_out_of_memory(self.out_of_memory)
        for name in ("max_attempts", "factor", "min_timeout", "max_timeout"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
                raise ValidationError(f"retry.{name}: expected a number, got {value!r}")
        if not isinstance(self.max_attempts, int) or self.max_attempts > MAX_ATTEMPTS:
            raise ValidationError(f"retry.max_attempts: expected a whole number from 1 to {MAX_ATTEMPTS}")
        if self.max_attempts < 1:
            raise ValidationError("retry.max_attempts must be at least 1")
        if self.factor < 1:
            raise ValidationError("retry.factor must be at least 1")
        if self.min_timeout < 0 or self.max_timeout < self.min_timeout:
            raise ValidationError("retry: need 0 <= min_timeout <= max_timeout")
        check_duration(self.max_timeout, "retry.max_timeout")

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RetryPolicy:
        data = dict(data or {})
        known = {k: data.pop(k) for k in list(data) if k in cls.__dataclass_fields__}
        if data:
            raise ValidationError(f"retry: unknown option(s) {sorted(data)}")
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["out_of_memory"] is None:  # as stored before machines: the same policy, the same JSON
            del data["out_of_memory"]
        return data

    def retry_machine(self, machine: str | None) -> str | None:
        """The machine an out-of-memory failure on ``machine`` retries on, or ``None`` (it is final)."""
        wanted = (self.out_of_memory or {}).get("machine")
        return wanted if wanted and wanted != machine else None

    def delay(self, attempt: int, rng: _random.Random | None = None) -> float:
        """Seconds to wait before the attempt after ``attempt`` (1-based) failed.

        ``min_timeout * factor**(attempt-1)``, times a random factor in [1, 2) when ``randomize``,
        capped at ``max_timeout``.
        """
        try:
            base = self.min_timeout * (self.factor ** (attempt - 1))
        except OverflowError:  # a large factor: the cap applies
            return self.max_timeout
        if self.randomize:
            base *= 1 + (rng or _random).random()
        return min(base, self.max_timeout)


@dataclass(frozen=True)
class FailureDecision:
    """What to do with a run whose attempt failed: retry after ``delay`` seconds, or finish it."""

    retry: bool
    delay: float = 0.0
    final_event: str = ""  # a RunEvent value when not retrying


@dataclass(frozen=True)
class RetryDecision:
    """What a task's ``catch_error`` hook decides about a failed attempt (``None``: the policy decides).

    >>> RetryDecision.skip()               # fail now, no more attempts
    >>> RetryDecision.after("30s")         # retry, after this long instead of the backoff
    >>> RetryDecision.at(datetime(...))    # retry at this time (an aware datetime, or local time)

    A retry still counts against ``max_attempts``, and failures that are never retried
    (``AbortTaskRunError``, invalid payloads...) stay final. It travels from the runner to the
    server with the attempt's result (``AttemptResult.retry``)."""

    retry: bool
    delay: float | None = None  # seconds, for `after`
    resume_at: float | None = None  # seconds since the epoch, for `at`

    @classmethod
    def skip(cls) -> RetryDecision:
        return cls(retry=False)

    @classmethod
    def after(cls, delay: float | str | timedelta) -> RetryDecision:
        """Retry after ``delay`` (seconds, ``"30s"``, ``"5m"``, a ``timedelta``)."""
        return cls(retry=True, delay=parse_duration(delay, field="RetryDecision.after"))

    @classmethod
    def at(cls, when: datetime) -> RetryDecision:
        if not isinstance(when, datetime):
            raise ValidationError("RetryDecision.at: expected a datetime")
        return cls(retry=True, resume_at=when.timestamp())


def _check_out_of_memory(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict) or set(value) != {"machine"}:
        raise ValidationError(
            'retry.out_of_memory: expected {"machine": preset}, e.g. {"machine": "large-1x"}',
            details={"field": "retry.out_of_memory"},
        )
    check_machine(value["machine"], "retry.out_of_memory.machine")


def is_final(kind: str, attempt: int, max_attempts: int, retry_machine: str | None = None) -> bool:
    """Whether a failure of ``kind`` on attempt ``attempt`` ends the run (no retry follows). An
    out-of-memory failure is retried only on another machine (``retry_machine``, from
    ``RetryPolicy.retry_machine``). The runner asks it too, to run ``on_failure`` and
    ``on_complete`` after the final attempt only."""
    if kind == FailureKind.OUT_OF_MEMORY and retry_machine is None:
        return True
    return kind in (FailureKind.ABORT, FailureKind.SYSTEM, FailureKind.INVALID) or attempt >= max_attempts


def decide_failure(
    kind: str,
    attempt: int,
    max_attempts: int,
    policy: RetryPolicy,
    rng: _random.Random | None = None,
    override: RetryDecision | None = None,
    now: float = 0.0,
    retry_machine: str | None = None,
) -> FailureDecision:
    """Decide between another attempt and a final status, for failure ``kind`` of attempt ``attempt``.
    ``override`` is the task's ``catch_error`` decision: it may end the run early or move the retry,
    never add attempts."""
    final = {
        FailureKind.CRASH: RunEvent.CRASH,
        FailureKind.OUT_OF_MEMORY: RunEvent.CRASH,
        FailureKind.TIMEOUT: RunEvent.TIME_OUT,
        FailureKind.SYSTEM: RunEvent.SYSTEM_FAIL,
    }.get(kind, RunEvent.FAIL)
    if is_final(kind, attempt, max_attempts, retry_machine) or (override is not None and not override.retry):
        return FailureDecision(retry=False, final_event=final.value)
    if override is not None and override.resume_at is not None:
        return FailureDecision(retry=True, delay=min(max(0.0, override.resume_at - now), MAX_RETRY_DELAY))
    if override is not None and override.delay is not None:
        return FailureDecision(retry=True, delay=min(max(0.0, override.delay), MAX_RETRY_DELAY))
    return FailureDecision(retry=True, delay=policy.delay(attempt, rng))
