"""Scheduled tasks (tests/integration/test_schedules.py): two declared in code, and one that
imperative schedules run and that returns the payload it received."""

from hightide import ScheduledPayload, schedules, task


@schedules.task(id="scheduled-declared", cron={"pattern": "0 3 29 2 *", "timezone": "Europe/Paris"})
async def scheduled_declared(payload: ScheduledPayload) -> str:
    return payload.timestamp.isoformat()


@schedules.task(id="scheduled-prod-only", cron={"pattern": "0 9 * * *", "environments": ["prod"]})
async def scheduled_prod_only(payload: ScheduledPayload) -> None:
    return None


@task(id="scheduled-echo")
async def scheduled_echo(payload: ScheduledPayload) -> dict:
    return {**payload.model_dump(mode="json"), "type": type(payload).__name__}
