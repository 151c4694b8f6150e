"""The options a run can be triggered with, declared once.

``TriggerOptions`` names every option, with its decided type and default, its limits and its help
text. The other layers derive from it rather than list the options again:

- the SDK (``sdk/client.py``, ``trigger_item``) sends each option under its ``sent_as`` name, as
  JSON (a ``timedelta`` as seconds, a ``datetime`` as ISO 8601, one string for a TAGS option as a
  list of one), and its ``trigger`` keywords are the declared names (a unit test checks);
- the API (``server/models.py``) builds its request model from the fields: the kind and the limits
  give each value's type, published in the OpenAPI document;
- the engine (``engine/options.py``) checks each value by its kind and decides it into a
  ``TriggerSpec``, which is a ``TriggerOptions`` with the task and payload.

An option is a field here, declared with ``option(...)``, plus whatever truly uses it (the SDK's
keyword arguments, and the engine where it decides a run).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import Field, dataclass, field, fields
from typing import Any

from hightide.core.limits import (
    MAX_ID_LENGTH,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_NAME_LENGTH,
    MAX_PRIORITY,
    MAX_TAG_LENGTH,
    MAX_TAGS,
)
from hightide.core.retry import MAX_ATTEMPTS


class OptionKind(enum.Enum):
    """What an option's value is, which says how each layer takes it."""

    TEXT = "text"  # a string of 1 to max_length characters, no NUL
    DURATION = "duration"  # seconds, or a text such as '5m'; decided as seconds
    DELAY = "delay"  # a duration or an ISO 8601 date-time; decided as the time it ends
    TAGS = "tags"  # up to max_items strings of 1 to max_length characters (one string: one tag)
    OBJECT = "object"  # a JSON object
    COUNT = "count"  # a whole number from minimum to maximum
    SECONDS = "seconds"  # a number of seconds from minimum to maximum
    DEBOUNCE = "debounce"  # {"key", "delay", "mode"?, "max_delay"?}; decided as a ``Debounce``


@dataclass(frozen=True)
class Debounce:
    """Triggers with the same ``key`` (for the same task) while its run is still delayed push that
    run ``delay`` seconds later instead of making another: ``mode`` "leading" keeps the first
    trigger's payload, "trailing" takes each new one's. ``max_delay``: never later than this after
    the first trigger."""

    key: str
    delay: float
    mode: str = "leading"
    max_delay: float | None = None


DEBOUNCE_MODES = ("leading", "trailing")


@dataclass(frozen=True)
class Option:
    """How one option is sent and checked (the field's ``metadata``)."""

    kind: OptionKind
    sent_as: str = ""  # the name the SDK and the API use, when it is not the field's
    help: str | None = None  # the API's description of it
    max_length: int | None = None  # TEXT, TAGS
    max_items: int | None = None  # TAGS
    minimum: float | None = None  # COUNT, SECONDS
    maximum: float | None = None  # COUNT, SECONDS


def option(
    kind: OptionKind,
    default: Any = None,
    *,
    factory: Callable[[], Any] | None = None,
    sent_as: str = "",
    help: str | None = None,
    max_length: int | None = None,
    max_items: int | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
) -> Any:
    """A field of ``TriggerOptions``: its default as decided (or a ``factory`` of it), and how it is
    sent and checked."""
    how = Option(kind, sent_as, help, max_length, max_items, minimum, maximum)
    if factory is not None:
        return field(default_factory=factory, metadata={"option": how})
    return field(default=default, metadata={"option": how})


@dataclass(frozen=True, kw_only=True)
class TriggerOptions:
    """How one run is triggered. Values as decided: durations in seconds, the delay as the time it
    ends (seconds since the epoch), tags as a tuple."""

    idempotency_key: str | None = option(OptionKind.TEXT, max_length=MAX_IDEMPOTENCY_KEY_LENGTH)
    idempotency_key_ttl: float | None = option(OptionKind.DURATION, help="e.g. '1h'; default 30 days")
    delay_until: float | None = option(OptionKind.DELAY, sent_as="delay")
    ttl: float | None = option(OptionKind.DURATION, help="expire the run if it has not started in time")
    tags: tuple[str, ...] = option(OptionKind.TAGS, (), max_items=MAX_TAGS, max_length=MAX_TAG_LENGTH)
    metadata: dict[str, Any] = option(OptionKind.OBJECT, factory=dict)  # noqa: RUF009 (a field with a factory)
    queue: str | None = option(OptionKind.TEXT, max_length=MAX_NAME_LENGTH)
    concurrency_key: str | None = option(OptionKind.TEXT, max_length=MAX_NAME_LENGTH)
    max_attempts: int | None = option(OptionKind.COUNT, minimum=1, maximum=MAX_ATTEMPTS)
    priority: float = option(
        OptionKind.SECONDS,
        0.0,
        minimum=0,
        maximum=MAX_PRIORITY,
        help="seconds ahead of its queue time (at most 30 days)",
    )
    machine: str | None = option(OptionKind.TEXT, max_length=MAX_ID_LENGTH)
    version: str | None = option(OptionKind.TEXT, max_length=MAX_ID_LENGTH)
    parent_run_id: str | None = option(OptionKind.TEXT, max_length=MAX_ID_LENGTH)
    debounce: Debounce | None = option(  # noqa: RUF009 (a frozen dataclass, decided from the sent object)
        OptionKind.DEBOUNCE,
        max_length=MAX_NAME_LENGTH,
        help="{'key', 'delay', 'mode': 'leading'|'trailing', 'max_delay'}: triggers with the same key while "
        "its run is delayed push that run later and return it",
    )


@dataclass(frozen=True)
class Declared:
    """One option as declared: the field's name, the name it is sent as, and how."""

    name: str
    sent_as: str
    how: Option


def _declared(f: Field[Any]) -> Declared:
    how: Option = f.metadata["option"]
    return Declared(f.name, how.sent_as or f.name, how)


TRIGGER_OPTIONS: tuple[Declared, ...] = tuple(_declared(f) for f in fields(TriggerOptions))
"""Every trigger option, in the order declared."""

OPTION_NAMES: frozenset[str] = frozenset(o.sent_as for o in TRIGGER_OPTIONS)
"""The names the SDK and the API use (``delay``, not ``delay_until``)."""
