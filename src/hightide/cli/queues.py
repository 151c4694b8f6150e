"""``hightide queues ...``: list queues, pause and resume them, override their concurrency limit.

A queue is named as its tasks name it; a task's own queue is ``task/<id>``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from hightide.cli.options import ApiUrl, JsonOut, SecretKey, call, print_json, request
from hightide.cli.output import console
from hightide.cli.render import print_queues, queue_limit, queue_rate

queues_app = typer.Typer(help="List queues; pause, resume and override their concurrency limit.", no_args_is_help=True)
QueueName = Annotated[str, typer.Argument(help="Queue name (a task's own queue is task/<id>).")]


def _one(
    method: str,
    path: tuple[str, str | None],
    as_json: bool,
    api_url: str | None,
    secret_key: str | None,
    body: Any = None,
) -> None:
    """Call one queue's endpoint (``path``: the queue's name and an action) and print the queue."""

    from hightide.sdk.client import queue_path

    queue = request(method, queue_path(*path), api_url, secret_key, body)
    if as_json:
        print_json(queue)
        return
    state = "paused" if queue["paused"] else "running"
    console.print(
        f"{queue['name']}  {state}  executing {queue['executing']:,}  queued {queue['queued']:,}  "
        f"limit {queue_limit(queue)}" + (f"  rate {queue_rate(queue)}" if queue.get("rate_limit") else ""),
        markup=False,
        soft_wrap=True,
    )


@queues_app.command("list")
def queues_list(as_json: JsonOut = False, api_url: ApiUrl = None, secret_key: SecretKey = None) -> None:
    """Every queue of the environment with its runs executing and queued now."""
    found = call(api_url, secret_key, lambda c: c.session.request("GET", "/api/v1/queues"))
    print_json(found["data"]) if as_json else print_queues(console, found["data"])


@queues_app.command("get")
def queues_get(name: QueueName, as_json: JsonOut = False, api_url: ApiUrl = None, secret_key: SecretKey = None) -> None:
    """Show one queue."""
    _one("GET", (name, None), as_json, api_url, secret_key)


@queues_app.command("pause")
def queues_pause(
    name: QueueName, as_json: JsonOut = False, api_url: ApiUrl = None, secret_key: SecretKey = None
) -> None:
    """Pause a queue: it still takes triggers, but none of its runs start until it is resumed."""
    _one("POST", (name, "pause"), as_json, api_url, secret_key)


@queues_app.command("resume")
def queues_resume(
    name: QueueName, as_json: JsonOut = False, api_url: ApiUrl = None, secret_key: SecretKey = None
) -> None:
    """Resume a paused queue: its queued runs start again."""
    _one("POST", (name, "resume"), as_json, api_url, secret_key)


@queues_app.command("override")
def queues_override(
    name: QueueName,
    limit: Annotated[int, typer.Argument(min=0, max=2**31 - 1, help="Runs executing at once (0 starts none).")],
    as_json: JsonOut = False,
    api_url: ApiUrl = None,
    secret_key: SecretKey = None,
) -> None:
    """Override a queue's concurrency limit, whatever its tasks declare, until `queues reset`."""
    _one("PUT", (name, "concurrency-limit"), as_json, api_url, secret_key, {"concurrency_limit": limit})


@queues_app.command("reset")
def queues_reset(
    name: QueueName, as_json: JsonOut = False, api_url: ApiUrl = None, secret_key: SecretKey = None
) -> None:
    """Reset a queue's concurrency limit to the one its tasks declare."""
    _one("DELETE", (name, "concurrency-limit"), as_json, api_url, secret_key)
