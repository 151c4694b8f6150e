"""``schedules``: tasks that run on a cron schedule, declared in code or created at run time.

Declarative: the schedule is part of the task, synced when its version registers.

>>> from hightide import schedules, ScheduledPayload
>>> @schedules.task(id="daily-report", cron="0 9 * * *")
... async def daily_report(payload: ScheduledPayload) -> None:
...     print(payload.timestamp, payload.upcoming[0])
>>> @schedules.task(id="paris", cron={"pattern": "0 9 * * *", "timezone": "Europe/Paris", "environments": ["prod"]})
... async def paris(payload: ScheduledPayload) -> None: ...

Imperative, e.g. one per user (the same ``deduplication_key`` updates the schedule in place):

>>> await schedules.create(task="daily-report", cron="0 8 * * *", timezone="America/New_York",
...                        external_id="user_42", deduplication_key="user_42-report")
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from hightide.core.cron import parse_cron
from hightide.errors import ConfigError, ValidationError
from hightide.sdk.defaults import default_client
from hightide.sdk.models import ScheduleInfo
from hightide.sdk.task import Task


class ScheduledPayload(BaseModel):
    """What a scheduled run receives: the tick it is for (``timestamp``, in the schedule's
    timezone), the previous tick fired (``last_timestamp``, None for the first), the schedule's
    ``timezone``, ``schedule_id`` and ``external_id``, and its next five ticks (``upcoming``)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    timestamp: datetime
    last_timestamp: datetime | None = None
    timezone: str = "UTC"
    schedule_id: str
    external_id: str | None = None
    upcoming: list[datetime] = []


def task(*, id: str, cron: str | dict[str, Any], **options: Any) -> Callable[[Callable[..., Any]], Task[Any, Any]]:
    """Declare a task that runs at each tick of ``cron``: a 5-field pattern (UTC), or
    ``{"pattern": ..., "timezone": "Europe/Paris", "environments": ["prod"]}`` (without
    ``environments``, every environment the task is deployed to). Other options are ``@task``'s.
    The payload is a ``ScheduledPayload`` (also when the function's parameter is not annotated)."""
    schedule = _declared(id, cron)

    def wrap(fn: Callable[..., Any]) -> Task[Any, Any]:
        return Task(fn, id=id, schedule=schedule, payload_type=ScheduledPayload, **options)

    return wrap


def _declared(task_id: str, cron: str | dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``schedule`` entry, checked now so that a wrong pattern fails at import."""
    spec = {"pattern": cron} if isinstance(cron, str) else dict(cron)
    unknown = set(spec) - {"pattern", "timezone", "environments"}
    if unknown or "pattern" not in spec:
        raise ConfigError(
            f"task {task_id!r}: cron is a pattern or {{'pattern': str, 'timezone': str, 'environments': [str]}}"
            + (f" (unknown: {', '.join(sorted(unknown))})" if unknown else "")
        )
    environments = spec.get("environments")
    if environments is not None and (
        isinstance(environments, str) or not all(isinstance(e, str) and e for e in environments)
    ):
        raise ConfigError(f"task {task_id!r}: cron environments is a list of environment names, e.g. ['prod']")
    try:
        parsed = parse_cron(spec["pattern"], spec.get("timezone", "UTC"))
    except ValidationError as exc:
        raise ConfigError(f"task {task_id!r}: {exc}") from exc
    return {
        "cron": parsed.pattern,
        "timezone": parsed.timezone,
        "environments": builtins.list(environments) if environments is not None else None,
    }


async def create(
    *,
    task: str,
    cron: str,
    timezone: str = "UTC",
    external_id: str | None = None,
    deduplication_key: str | None = None,
) -> ScheduleInfo:
    """A schedule running ``task`` at each tick of ``cron`` in ``timezone``; a ``deduplication_key``
    an existing schedule has updates that one in place."""
    return await default_client().schedules.create(
        task=task, cron=cron, timezone=timezone, external_id=external_id, deduplication_key=deduplication_key
    )


async def list(*, task: str | None = None, kind: str | None = None) -> builtins.list[ScheduleInfo]:
    """Every schedule of the environment, oldest first (``kind``: ``declarative`` or ``imperative``)."""
    return await default_client().schedules.list(task=task, kind=kind)


async def retrieve(schedule_id: str) -> ScheduleInfo:
    return await default_client().schedules.retrieve(schedule_id)


async def update(
    schedule_id: str,
    *,
    task: str | None = None,
    cron: str | None = None,
    timezone: str | None = None,
    external_id: str | None = None,
) -> ScheduleInfo:
    """Change an imperative schedule; what is not given stays."""
    return await default_client().schedules.update(
        schedule_id, task=task, cron=cron, timezone=timezone, external_id=external_id
    )


async def delete(schedule_id: str) -> None:
    """Delete an imperative schedule (a declarative one goes when its task stops declaring it)."""
    await default_client().schedules.delete(schedule_id)


async def activate(schedule_id: str) -> ScheduleInfo:
    return await default_client().schedules.activate(schedule_id)


async def deactivate(schedule_id: str) -> ScheduleInfo:
    return await default_client().schedules.deactivate(schedule_id)


async def timezones() -> builtins.list[str]:
    """The IANA timezone names a schedule may use."""
    return await default_client().schedules.timezones()
