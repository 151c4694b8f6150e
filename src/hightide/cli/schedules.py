"""``hightide schedules ...``: list, create, get, update, delete, activate and deactivate cron schedules."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from hightide.cli.options import ApiUrl, JsonOut, SecretKey, every_page, print_json, request
from hightide.cli.output import console
from hightide.cli.render import _when, print_schedules

schedules_app = typer.Typer(
    help="List, create, get, update, delete, activate and deactivate cron schedules.", no_args_is_help=True
)
ScheduleId = Annotated[str, typer.Argument(help="The schedule's id (sched_...).")]


def _print_one(schedule: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(schedule)
        return
    state = "active" if schedule["active"] else "inactive"
    nxt = f"  next {_when(schedule.get('next_run_at'))}" if schedule.get("next_run_at") else ""
    console.print(
        f"{schedule['id']}  {schedule['task']}  {schedule['cron']} ({schedule['timezone']})  {state}{nxt}",
        markup=False,
        soft_wrap=True,
    )


@schedules_app.command("list")
def schedules_list(
    task: Annotated[
        str | None, typer.Option("--task", help="Only the schedules of this task.", envvar="HIGHTIDE_SCHEDULE_TASK")
    ] = None,
    as_json: JsonOut = False,
    api_url: ApiUrl = None,
    secret_key: SecretKey = None,
) -> None:
    """Every schedule of the environment, with its next run."""
    found = every_page("/api/v1/schedules", {"task": task} if task else {}, api_url, secret_key)
    print_json(found) if as_json else print_schedules(console, found)


@schedules_app.command("create")
def schedules_create(
    task: Annotated[str, typer.Option("--task", help="The task each tick runs.", envvar="HIGHTIDE_SCHEDULE_TASK")],
    cron: Annotated[
        str, typer.Option("--cron", help="5 fields, e.g. '0 9 * * *' (09:00 daily); L allowed.", envvar="HIGHTIDE_CRON")
    ],
    timezone: Annotated[
        str, typer.Option("--timezone", "--tz", help="IANA timezone, e.g. Europe/Paris.", envvar="HIGHTIDE_TIMEZONE")
    ] = "UTC",
    external_id: Annotated[
        str | None, typer.Option("--external-id", help="Yours (e.g. a user id).", envvar="HIGHTIDE_EXTERNAL_ID")
    ] = None,
    deduplication_key: Annotated[
        str | None,
        typer.Option(
            "--deduplication-key", help="The same key again updates that schedule.", envvar="HIGHTIDE_DEDUPLICATION_KEY"
        ),
    ] = None,
    as_json: JsonOut = False,
    api_url: ApiUrl = None,
    secret_key: SecretKey = None,
) -> None:
    """Create a schedule (or update the one with the same --deduplication-key)."""
    body = {
        "task": task,
        "cron": cron,
        "timezone": timezone,
        "external_id": external_id,
        "deduplication_key": deduplication_key,
    }
    _print_one(request("POST", "/api/v1/schedules", api_url, secret_key, body), as_json)


@schedules_app.command("get")
def schedules_get(
    schedule_id: ScheduleId, as_json: JsonOut = False, api_url: ApiUrl = None, secret_key: SecretKey = None
) -> None:
    """A schedule with its next runs."""
    from hightide.sdk.client import schedule_path

    schedule = request("GET", schedule_path(schedule_id), api_url, secret_key)
    _print_one(schedule, as_json)
    if not as_json and schedule.get("upcoming"):
        console.print("next runs: " + ", ".join(_when(t) for t in schedule["upcoming"]), markup=False)


@schedules_app.command("update")
def schedules_update(
    schedule_id: ScheduleId,
    task: Annotated[
        str | None, typer.Option("--task", help="Another task to run.", envvar="HIGHTIDE_SCHEDULE_TASK")
    ] = None,
    cron: Annotated[str | None, typer.Option("--cron", help="A new pattern.", envvar="HIGHTIDE_CRON")] = None,
    timezone: Annotated[
        str | None, typer.Option("--timezone", "--tz", help="A new IANA timezone.", envvar="HIGHTIDE_TIMEZONE")
    ] = None,
    external_id: Annotated[
        str | None, typer.Option("--external-id", help="A new external id.", envvar="HIGHTIDE_EXTERNAL_ID")
    ] = None,
    as_json: JsonOut = False,
    api_url: ApiUrl = None,
    secret_key: SecretKey = None,
) -> None:
    """Change an imperative schedule; what is not given stays (a new pattern or timezone moves its
    next run)."""
    from hightide.sdk.client import schedule_path

    given = {"task": task, "cron": cron, "timezone": timezone, "external_id": external_id}
    body = {k: v for k, v in given.items() if v is not None}
    _print_one(request("PUT", schedule_path(schedule_id), api_url, secret_key, body), as_json)


@schedules_app.command("delete")
def schedules_delete(
    schedule_id: ScheduleId, as_json: JsonOut = False, api_url: ApiUrl = None, secret_key: SecretKey = None
) -> None:
    """Delete an imperative schedule (a declarative one goes when its task stops declaring it)."""
    from hightide.sdk.client import schedule_path

    done = request("DELETE", schedule_path(schedule_id), api_url, secret_key)
    print_json(done) if as_json else console.print(f"deleted {schedule_id}", markup=False)


@schedules_app.command("activate")
def schedules_activate(
    schedule_id: ScheduleId, as_json: JsonOut = False, api_url: ApiUrl = None, secret_key: SecretKey = None
) -> None:
    """Activate a schedule: it fires from its next tick (ticks missed meanwhile do not)."""
    from hightide.sdk.client import schedule_path

    _print_one(request("POST", schedule_path(schedule_id, "activate"), api_url, secret_key), as_json)


@schedules_app.command("deactivate")
def schedules_deactivate(
    schedule_id: ScheduleId, as_json: JsonOut = False, api_url: ApiUrl = None, secret_key: SecretKey = None
) -> None:
    """Deactivate a schedule: it fires nothing until it is activated."""
    from hightide.sdk.client import schedule_path

    _print_one(request("POST", schedule_path(schedule_id, "deactivate"), api_url, secret_key), as_json)
