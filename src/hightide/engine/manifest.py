"""Checks of a worker's task manifest, so that nothing it declares can break a later trigger."""

from __future__ import annotations

from typing import Any

from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

from hightide.core.cron import parse_cron
from hightide.core.limits import MAX_INT, MAX_NAME_LENGTH, MAX_TASK_ID_LENGTH, check_duration, check_text
from hightide.core.machines import check_machine
from hightide.core.ratelimits import parse_rate_limit
from hightide.core.retry import RetryPolicy
from hightide.errors import ValidationError
from hightide.store.records import DeclaredSchedule, Environment


def check_manifest_task(task: Any, where: str) -> str:
    """Validate one manifest entry in place (filling the default queue); return its task id."""
    if not isinstance(task, dict):
        raise ValidationError(f"{where}: expected an object")
    task_id = task.get("id")
    if not isinstance(task_id, str) or not task_id:
        raise ValidationError(f"{where}.id: expected a non-empty string")
    check_text(task_id, f"{where}.id", MAX_TASK_ID_LENGTH)
    queue = task.setdefault("queue", {"name": f"task/{task_id}"})
    if not isinstance(queue, dict) or not isinstance(queue.get("name"), str) or not queue["name"]:
        raise ValidationError(
            f"{where}.queue: expected {{'name': str, 'concurrency_limit': int | null, 'rate_limit': object | null}}"
        )
    check_text(queue["name"], f"{where}.queue.name", MAX_NAME_LENGTH)
    limit = queue.get("concurrency_limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or not 0 <= limit <= MAX_INT):
        raise ValidationError(f"{where}.queue.concurrency_limit: expected a whole number from 0 to {MAX_INT}")
    rate = parse_rate_limit(queue.get("rate_limit"), f"{where}.queue.rate_limit")
    if rate is not None:
        queue["rate_limit"] = rate.to_dict()  # stored as decided: the period in seconds
    retry = task.get("retry")
    if retry is not None and not isinstance(retry, dict):
        raise ValidationError(f"{where}.retry: expected an object")
    try:
        RetryPolicy.from_dict(retry)
    except TypeError as exc:
        raise ValidationError(f"{where}.retry: {exc}") from exc
    if task.get("machine") is not None:
        check_machine(task["machine"], f"{where}.machine")
    for name in ("ttl", "max_duration"):
        value = task.get(name)
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool) or value <= 0):
            raise ValidationError(f"{where}.{name}: expected a number of seconds > 0")
        if value is not None:
            check_duration(value, f"{where}.{name}")
    schema = task.get("payload_schema")
    if schema is not None:
        if not isinstance(schema, dict):
            raise ValidationError(f"{where}.payload_schema: expected a JSON schema object")
        try:
            validator_for(schema).check_schema(schema)
        except SchemaError as exc:
            raise ValidationError(f"{where}.payload_schema: not a valid JSON schema: {exc.message}") from exc
    check_manifest_schedule(task.get("schedule"), f"{where}.schedule")
    return task_id


def check_manifest_schedule(schedule: Any, where: str) -> None:
    """A task's declared schedule: ``{"cron": str, "timezone": str, "environments": [str] | null}``."""
    if schedule is None:
        return
    if not isinstance(schedule, dict):
        raise ValidationError(f"{where}: expected {{'cron': str, 'timezone': str, 'environments': [str] | null}}")
    parse_cron(schedule.get("cron"), schedule.get("timezone") or "UTC", field=f"{where}.cron")
    environments = schedule.get("environments")
    if environments is not None and (
        not isinstance(environments, list) or not all(isinstance(e, str) and e for e in environments)
    ):
        raise ValidationError(f"{where}.environments: expected a list of environment names, e.g. ['prod']")


def declared_schedules(env: Environment, manifest: dict[str, Any], now: float) -> list[DeclaredSchedule]:
    """The schedules the tasks of a checked ``manifest`` declare for ``env`` (their ``environments``
    name it, or are not given), each with its next tick after ``now``."""
    out = []
    for task in manifest.get("tasks", []):
        spec = task.get("schedule")
        if not spec:
            continue
        environments = spec.get("environments")
        if environments and env.slug not in environments:
            continue
        cron = parse_cron(spec["cron"], spec.get("timezone") or "UTC")
        out.append(DeclaredSchedule(task["id"], cron.pattern, cron.timezone, cron.next_after(now)))
    return out
