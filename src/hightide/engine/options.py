"""Trigger options as the engine receives them: checked by their kind and decided into a spec.

The options are declared in ``core/options.py``; this module checks and decides each value by its
kind, with errors that name the field.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hightide.core.durations import parse_duration
from hightide.core.limits import MAX_DURATION_TEXT_LENGTH, check_text, check_time
from hightide.core.machines import check_machine
from hightide.core.options import (
    DEBOUNCE_MODES,
    OPTION_NAMES,
    TRIGGER_OPTIONS,
    Debounce,
    Declared,
    OptionKind,
    TriggerOptions,
)
from hightide.core.tracing import TraceParent
from hightide.errors import ValidationError

MAX_BATCH_ITEMS = 1000
DEFAULT_IDEMPOTENCY_TTL = 30 * 86400.0
TriggerItem = tuple[str | None, Any, dict[str, Any]]
"""One run to trigger, as sent: (its task, or ``None`` for the batch's default task; payload; options)."""


@dataclass(frozen=True)
class TriggerSpec(TriggerOptions):
    """One run to create: its task, its payload and its options as decided (``TriggerOptions``)."""

    task_id: str
    payload: Any = None
    trace_parent: TraceParent | None = None  # from the request's `traceparent` header


def parse_delay(value: Any, now: float, field_name: str = "delay") -> float | None:
    """``delay`` is a duration ("5m", seconds) or an ISO 8601 date-time; returns an absolute time."""
    if value is None:
        return None
    if isinstance(value, str) and ("T" in value or value.count("-") >= 2):
        try:
            when = datetime.fromisoformat(
                check_text(value, field_name, MAX_DURATION_TEXT_LENGTH).replace("Z", "+00:00")
            )
        except ValueError as exc:
            raise ValidationError(
                f"{field_name}: {value!r} is neither a duration nor an ISO 8601 date-time",
                details={"field": field_name},
            ) from exc
        if when.tzinfo is None:
            raise ValidationError(
                f"{field_name}: date-time {value!r} needs a timezone (e.g. 'Z' or '+00:00')",
                details={"field": field_name},
            )
        return check_time(when.timestamp(), field_name)
    return now + parse_duration(value, field=field_name)


def spec_from_options(
    task_id: str,
    payload: Any,
    options: dict[str, Any],
    now: float,
    prefix: str = "",
    trace_parent: TraceParent | None = None,
) -> TriggerSpec:
    """Validate the ``options`` of one trigger request; errors name the field (under ``prefix``)."""
    unknown = sorted(set(options) - OPTION_NAMES)
    if unknown:
        raise ValidationError(f"{prefix}options: unknown option(s) {unknown}", details={"field": f"{prefix}options"})

    def decide(o: Declared) -> Any:
        return _DECIDE[o.how.kind](options.get(o.sent_as), o, f"{prefix}options.{o.sent_as}", now)

    # Times last, after what the request names: an unknown machine is the error a caller needs
    # first, and a bad duration beside it is reported once that is fixed.
    timed = (OptionKind.DURATION, OptionKind.DELAY)
    decided = {o.name: decide(o) for o in TRIGGER_OPTIONS if o.how.kind not in timed}
    check_machine_and_version(options, prefix)
    decided |= {o.name: decide(o) for o in TRIGGER_OPTIONS if o.how.kind in timed}
    if decided.get("debounce") is not None and decided.get("delay_until") is not None:
        raise ValidationError(
            f"{prefix}options.debounce: a debounced run's delay is the debounce's; leave out delay",
            details={"field": f"{prefix}options.delay"},
        )
    return TriggerSpec(task_id=task_id, payload=payload, trace_parent=trace_parent, **decided)


# -- each kind, checked and decided: (the value as sent, the option, its field, now) -> the value as decided


def _text(value: Any, option: Declared, field: str, now: float) -> str | None:
    assert option.how.max_length is not None
    return None if value is None else check_text(value, field, option.how.max_length)


def _duration(value: Any, option: Declared, field: str, now: float) -> float | None:
    return None if value is None else parse_duration(value, field=field)


def _delay(value: Any, option: Declared, field: str, now: float) -> float | None:
    return parse_delay(value, now, field)


def _tags(value: Any, option: Declared, field: str, now: float) -> tuple[str, ...]:
    most, longest = option.how.max_items, option.how.max_length
    assert most is not None and longest is not None
    tags = value or ()
    if isinstance(tags, str):
        tags = (tags,)
    if not isinstance(tags, list | tuple) or not all(isinstance(x, str) for x in tags):
        raise ValidationError(f"{field}: expected a list of strings", details={"field": option.sent_as})
    if len(tags) > most or any(not tag or len(tag) > longest for tag in tags):
        raise ValidationError(
            f"{field}: at most {most} tags of 1 to {longest} characters", details={"field": option.sent_as}
        )
    for i, tag in enumerate(tags):
        check_text(tag, f"{field}[{i}]", longest)
    return tuple(tags)


def _object(value: Any, option: Declared, field: str, now: float) -> dict[str, Any]:
    value = value or {}
    if not isinstance(value, dict):
        raise ValidationError(f"{field}: expected an object", details={"field": option.sent_as})
    return value


def _count(value: Any, option: Declared, field: str, now: float) -> int | None:
    low, high = option.how.minimum, option.how.maximum
    assert low is not None and high is not None
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high):
        raise ValidationError(
            f"{field}: expected a whole number from {low:.0f} to {high:.0f}", details={"field": option.sent_as}
        )
    return value


def _seconds(value: Any, option: Declared, field: str, now: float) -> float:
    low, high = option.how.minimum, option.how.maximum
    assert low is not None and high is not None
    value = value or 0
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise ValidationError(
            f"{field}: expected a number of seconds from {low:g} to {high:g}", details={"field": option.sent_as}
        )
    return float(value)


def _debounce(value: Any, option: Declared, field: str, now: float) -> Debounce | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError(f"{field}: expected an object with a key and a delay", details={"field": field})
    unknown = sorted(set(value) - {"key", "delay", "mode", "max_delay"})
    if unknown:
        raise ValidationError(f"{field}: unknown field(s) {unknown}", details={"field": field})
    assert option.how.max_length is not None
    key = check_text(value.get("key"), f"{field}.key", option.how.max_length)
    if value.get("delay") is None:
        raise ValidationError(f"{field}.delay: required, e.g. '5s'", details={"field": f"{field}.delay"})
    delay = parse_duration(value["delay"], field=f"{field}.delay")
    mode = value.get("mode") or "leading"
    if mode not in DEBOUNCE_MODES:
        raise ValidationError(
            f"{field}.mode: expected one of {list(DEBOUNCE_MODES)}", details={"field": f"{field}.mode"}
        )
    max_delay = (
        None if value.get("max_delay") is None else parse_duration(value["max_delay"], field=f"{field}.max_delay")
    )
    if max_delay is not None and max_delay < delay:
        raise ValidationError(
            f"{field}.max_delay: must be at least the delay ({delay:g} s)", details={"field": f"{field}.max_delay"}
        )
    return Debounce(key, delay, mode, max_delay)


_DECIDE: dict[OptionKind, Callable[[Any, Declared, str, float], Any]] = {
    OptionKind.TEXT: _text,
    OptionKind.DURATION: _duration,
    OptionKind.DELAY: _delay,
    OptionKind.TAGS: _tags,
    OptionKind.OBJECT: _object,
    OptionKind.COUNT: _count,
    OptionKind.SECONDS: _seconds,
    OptionKind.DEBOUNCE: _debounce,
}


def check_machine_and_version(options: dict[str, Any], prefix: str = "") -> None:
    """``machine`` must name a preset. ``version`` pins a deployed version, and there are no deploys
    yet: refuse it rather than ignore it."""
    if options.get("machine") is not None:
        check_machine(options["machine"], f"{prefix}options.machine")
    if options.get("version") is not None:
        raise ValidationError(
            f"{prefix}options.version: pinning a run to a version needs deploys, which this server does not "
            "support yet; leave `version` unset (a run uses the version of the worker that runs it)",
            details={"field": f"{prefix}options.version"},
        )


def batch_specs(
    default_task: str | None,
    items: Sequence[TriggerItem],
    now: float,
    trace_parent: TraceParent | None = None,
    *,
    single: bool = False,
) -> list[TriggerSpec]:
    """The specs of a batch: each item is (task id or ``None`` for ``default_task``, payload, options).
    A single trigger is a batch of one whose errors name the fields without ``items[0].``."""
    specs = []
    for i, (task_id, payload, options) in enumerate(items):
        prefix = "" if single else f"items[{i}]."
        item_task = task_id or default_task
        if not item_task:
            raise ValidationError(f"{prefix}task: required", details={"field": f"{prefix}task"})
        specs.append(spec_from_options(item_task, payload, options, now, prefix, trace_parent))
    return specs
