"""``hightide trigger``, ``hightide runs ...`` and ``hightide tokens ...``: the API from a shell.

Text output is for people (ids whole, so they can be copied into the next command); ``--json``
prints the API's own fields for scripts.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hightide.cli.options import ApiUrl, JsonOut, SecretKey, any_case, call, print_json, read_json
from hightide.cli.output import console
from hightide.cli.render import log_line, print_run, print_runs, print_tokens, trace_tree

if TYPE_CHECKING:
    from hightide.sdk.client import AsyncClient

runs_app = typer.Typer(help="Inspect and control runs.", no_args_is_help=True)
tokens_app = typer.Typer(help="List and complete waitpoint tokens.", no_args_is_help=True)

_FOLLOW_INTERVAL = 0.5  # seconds between two polls of `runs logs --follow`


def trigger(
    task_id: Annotated[str, typer.Argument(help="Task id.")],
    payload: Annotated[
        str, typer.Option(help="JSON payload, @file.json, or - for stdin.", envvar="HIGHTIDE_PAYLOAD")
    ] = "{}",
    delay: Annotated[str | None, typer.Option(help="e.g. 5m", envvar="HIGHTIDE_DELAY")] = None,
    idempotency_key: Annotated[str | None, typer.Option(envvar="HIGHTIDE_IDEMPOTENCY_KEY")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Repeatable.", envvar="HIGHTIDE_TAG")] = None,
    wait: Annotated[bool, typer.Option("--wait", envvar="HIGHTIDE_WAIT", help="Wait for the run to finish.")] = False,
    as_json: JsonOut = False,
    api_url: ApiUrl = None,
    secret_key: SecretKey = None,
) -> None:
    """Trigger a run from a shell; prints its id (the payload defaults to {})."""
    body = read_json(payload, "--payload")

    async def go(client: AsyncClient) -> dict[str, Any] | None:
        handle = await client.trigger(task_id, body, delay=delay, idempotency_key=idempotency_key, tags=tag)
        if not as_json:
            console.print(handle.id + ("  (cached)" if handle.is_cached else ""))
        elif not wait:  # with --wait, the JSON printed is the finished run's
            print_json({"id": handle.id, "task_id": handle.task_id, "is_cached": handle.is_cached})
        if not wait:
            return None
        await client.runs.poll(handle.id)
        return await _retrieve(client, handle.id)

    run = call(api_url, secret_key, go)
    if run is not None:
        print_json(run) if as_json else print_run(console, run)
        if run["status"] != "COMPLETED":
            sys.exit(1)


async def _retrieve(client: AsyncClient, run_id: str) -> dict[str, Any]:
    data: dict[str, Any] = await client.session.request("GET", f"/api/v1/runs/{run_id}")
    return data


def _filters(**given: Any) -> dict[str, Any]:
    """Query parameters of the filters that were given."""
    return {name: value for name, value in given.items() if value}


async def _pages(client: AsyncClient, path: str, params: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` items of a paginated list, following ``next_cursor``."""
    items: list[dict[str, Any]] = []
    params = {**params, "limit": min(limit, 1000)}
    while len(items) < limit:
        page = await client.session.request("GET", path, params=params)
        items += page["data"]
        if not page.get("next_cursor"):
            break
        params["cursor"] = page["next_cursor"]
    return items[:limit]


@runs_app.command("list")
def runs_list(
    status: Annotated[
        list[str] | None,
        typer.Option(
            help="COMPLETED, FAILED, ... (any case); repeatable.", envvar="HIGHTIDE_STATUS", callback=any_case
        ),
    ] = None,
    task: Annotated[list[str] | None, typer.Option(help="Repeatable.", envvar="HIGHTIDE_TASK")] = None,
    tag: Annotated[str | None, typer.Option(envvar="HIGHTIDE_TAG")] = None,
    limit: Annotated[int, typer.Option(min=1, envvar="HIGHTIDE_LIMIT", help="Most runs shown.")] = 20,
    as_json: JsonOut = False,
    api_url: ApiUrl = None,
    secret_key: SecretKey = None,
) -> None:
    """List runs, newest first (whole ids: copy one into `hightide runs get`)."""
    params = _filters(status=status, task=task, tag=tag)
    found = call(api_url, secret_key, lambda c: _pages(c, "/api/v1/runs", params, limit))
    print_json(found) if as_json else print_runs(console, found)


@runs_app.command("get")
def runs_get(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    as_json: JsonOut = False,
    api_url: ApiUrl = None,
    secret_key: SecretKey = None,
) -> None:
    """Show a run: status, attempts, payload, output or error, and what it waits for."""
    run = call(api_url, secret_key, lambda c: _retrieve(c, run_id))
    print_json(run) if as_json else print_run(console, run)


@runs_app.command("cancel")
def runs_cancel(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    as_json: JsonOut = False,
    api_url: ApiUrl = None,
    secret_key: SecretKey = None,
) -> None:
    """Cancel a run (and its unfinished children)."""
    run = call(api_url, secret_key, lambda c: c.session.request("POST", f"/api/v1/runs/{run_id}/cancel"))
    print_json(run) if as_json else console.print(f"{run['id']} {run['status']}")


@runs_app.command("replay")
def runs_replay(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    as_json: JsonOut = False,
    api_url: ApiUrl = None,
    secret_key: SecretKey = None,
) -> None:
    """Trigger a new run with the same payload; prints the new run's id."""
    handle = call(api_url, secret_key, lambda c: c.session.request("POST", f"/api/v1/runs/{run_id}/replay"))
    print_json(handle) if as_json else console.print(handle["id"])


@runs_app.command("logs")
def runs_logs(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", envvar="HIGHTIDE_FOLLOW", help="Keep printing until the run finishes.")
    ] = False,
    as_json: JsonOut = False,
    api_url: ApiUrl = None,
    secret_key: SecretKey = None,
) -> None:
    """Print a run's logs (logger calls, print and logging inside the task), oldest first.
    With --json: one JSON record per line."""

    shown = 0

    def show(entry: dict[str, Any]) -> None:
        nonlocal shown
        shown += 1
        if as_json:
            sys.stdout.write(json.dumps(entry, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        else:
            console.print(log_line(entry), markup=False, soft_wrap=True)

    async def go(client: AsyncClient) -> None:
        after = 0
        path = f"/api/v1/runs/{run_id}/logs"
        while True:
            # Read the status before the logs: a run seen finished has sent all its logs by then.
            finished = (await client.session.request("GET", f"/api/v1/runs/{run_id}"))["is_finished"]
            while True:
                page = (await client.session.request("GET", path, params={"after": after}))["data"]
                for entry in page:
                    show(entry)
                    after = entry["id"]
                if len(page) < 1000:
                    break
            if not follow or finished:
                return
            await asyncio.sleep(_FOLLOW_INTERVAL)

    call(api_url, secret_key, go)
    if not shown and not as_json:
        console.print("[dim]no logs[/]")


@runs_app.command("trace")
def runs_trace(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    as_json: JsonOut = False,
    api_url: ApiUrl = None,
    secret_key: SecretKey = None,
) -> None:
    """Show the trace a run belongs to as a tree of spans with their durations."""
    trace = call(api_url, secret_key, lambda c: c.session.request("GET", f"/api/v1/runs/{run_id}/trace"))
    print_json(trace) if as_json else console.print(trace_tree(trace), soft_wrap=False)


@tokens_app.command("list")
def tokens_list(
    status: Annotated[
        list[str] | None,
        typer.Option(
            help="WAITING, COMPLETED, TIMED_OUT, CANCELED (any case); repeatable.",
            envvar="HIGHTIDE_STATUS",
            callback=any_case,
        ),
    ] = None,
    tag: Annotated[str | None, typer.Option(envvar="HIGHTIDE_TAG")] = None,
    limit: Annotated[int, typer.Option(min=1, envvar="HIGHTIDE_LIMIT", help="Most tokens shown.")] = 20,
    as_json: JsonOut = False,
    api_url: ApiUrl = None,
    secret_key: SecretKey = None,
) -> None:
    """List waitpoint tokens, newest first."""
    params = _filters(status=status, tag=tag)
    found = call(api_url, secret_key, lambda c: _pages(c, "/api/v1/waitpoints/tokens", params, limit))
    print_json(found) if as_json else print_tokens(console, found)


@tokens_app.command("complete")
def tokens_complete(
    token_id: Annotated[str, typer.Argument(help="Token id.")],
    data: Annotated[
        str, typer.Option(help="JSON the waiting run receives, @file.json, or - for stdin.", envvar="HIGHTIDE_DATA")
    ] = "null",
    as_json: JsonOut = False,
    api_url: ApiUrl = None,
    secret_key: SecretKey = None,
) -> None:
    """Complete a waitpoint token: the runs waiting for it continue with DATA as its output."""
    body = read_json(data, "--data")
    path = f"/api/v1/waitpoints/tokens/{token_id}/complete"
    token = call(api_url, secret_key, lambda c: c.session.request("POST", path, json={"data": body}))
    print_json(token) if as_json else console.print(f"{token['id']} {token['status']}")
