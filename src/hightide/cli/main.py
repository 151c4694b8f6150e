"""The ``hightide`` command. Every flag also reads a ``HIGHTIDE_*`` environment variable."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from hightide.cli.output import console, fail
from hightide.errors import HightideError

app = typer.Typer(
    name="hightide",
    help="Hightide: background tasks for Python. Durable, observable, no timeouts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
runs_app = typer.Typer(help="Inspect and control runs.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage environment secret keys (operators).", no_args_is_help=True)
db_app = typer.Typer(help="Database administration.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")

DEFAULT_SERVER_DB = ".hightide/server.db"
DatabaseUrl = Annotated[
    str,
    typer.Option(
        "--database-url", envvar="HIGHTIDE_DATABASE_URL", help="SQLite path / sqlite:///PATH / postgresql://..."
    ),
]
ApiUrl = Annotated[str | None, typer.Option("--api-url", "-a", envvar="HIGHTIDE_API_URL", help="Server URL.")]
SecretKey = Annotated[
    str | None, typer.Option("--secret-key", envvar="HIGHTIDE_SECRET_KEY", help="Environment secret key.")
]


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Project folder.")] = Path("."),
    force: Annotated[bool, typer.Option("--force", envvar="HIGHTIDE_FORCE", help="Overwrite existing files.")] = False,
) -> None:
    """Scaffold hightide.config.py and trigger/example.py."""
    from hightide.cli.scaffold import scaffold

    for line in scaffold(path, force):
        console.print(line)


@app.command()
def dev(
    port: Annotated[int, typer.Option(envvar="HIGHTIDE_PORT", help="Port of the embedded server.")] = 3030,
    host: Annotated[str, typer.Option(envvar="HIGHTIDE_HOST", help="Interface of the embedded server.")] = "127.0.0.1",
    max_concurrent_runs: Annotated[
        int, typer.Option(envvar="HIGHTIDE_MAX_CONCURRENT_RUNS", min=1, help="Runs executing at once.")
    ] = 8,
    database_url: Annotated[
        str | None, typer.Option("--database-url", envvar="HIGHTIDE_DATABASE_URL", help="Default: .hightide/dev.db")
    ] = None,
    lease_seconds: Annotated[
        float,
        typer.Option(envvar="HIGHTIDE_LEASE_SECONDS", min=1, help="A run whose worker is silent this long is retried."),
    ] = 30.0,
) -> None:
    """Run this project's tasks locally: embedded server + worker, hot reload, offline."""
    from hightide.cli.dev import run_dev
    from hightide.config import load_project_config

    config = load_project_config()
    asyncio.run(run_dev(config, host, port, max_concurrent_runs, database_url, lease_seconds))


@app.command()
def server(
    database_url: DatabaseUrl = DEFAULT_SERVER_DB,
    host: Annotated[str, typer.Option(envvar="HIGHTIDE_HOST", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="HIGHTIDE_PORT", help="Port to listen on.")] = 3030,
    lease_seconds: Annotated[
        float,
        typer.Option(envvar="HIGHTIDE_LEASE_SECONDS", min=1, help="A run whose worker is silent this long is retried."),
    ] = 30.0,
    max_payload_bytes: Annotated[
        int, typer.Option(envvar="HIGHTIDE_MAX_PAYLOAD_BYTES", min=1, help="Largest payload, output or metadata.")
    ] = 3 * 1024 * 1024,
    concurrency_limit: Annotated[
        int | None,
        typer.Option(
            envvar="HIGHTIDE_CONCURRENCY_LIMIT", min=1, help="Runs executing at once per environment (default 100)."
        ),
    ] = None,
) -> None:
    """Self-hosted API + engine. Creates project `default` (dev, staging, prod) on first start."""
    from hightide.cli.serve import run_server
    from hightide.server import ServerSettings

    settings = ServerSettings(
        database_url=database_url, lease_seconds=lease_seconds, max_payload_bytes=max_payload_bytes
    )
    asyncio.run(run_server(settings, host, port))


@app.command()
def worker(
    api_url: ApiUrl = None,
    secret_key: SecretKey = None,
    concurrency: Annotated[int, typer.Option(envvar="HIGHTIDE_CONCURRENCY", min=1, help="Runs executing at once.")] = 4,
    prefetch: Annotated[
        int | None,
        typer.Option(
            envvar="HIGHTIDE_PREFETCH",
            min=0,
            help="Most runs claimed ahead of free slots; fewer when runs are long (default: 32 x concurrency).",
        ),
    ] = None,
    runs_per_process: Annotated[
        int, typer.Option(envvar="HIGHTIDE_RUNS_PER_PROCESS", min=1, help="Runs before a runner is replaced.")
    ] = 1000,
    shutdown_grace: Annotated[
        float,
        typer.Option(
            envvar="HIGHTIDE_SHUTDOWN_GRACE",
            min=0,
            help="On stop, seconds to let runs finish; runs still going then are handed back to the queue"
            " (no attempt used) and continue on another worker. Runs not started are handed back at once.",
        ),
    ] = 30.0,
) -> None:
    """Run the tasks of the current project against a server."""
    from hightide.cli.serve import run_worker
    from hightide.config import client_settings, load_project_config

    config = load_project_config()
    settings = client_settings(api_url, secret_key)
    prefetch = 32 * concurrency if prefetch is None else prefetch
    asyncio.run(run_worker(config, settings, concurrency, prefetch, runs_per_process, shutdown_grace))


@app.command()
def trigger(
    task_id: Annotated[str, typer.Argument(help="Task id.")],
    payload: Annotated[str, typer.Option(help="JSON payload.", envvar="HIGHTIDE_PAYLOAD")] = "null",
    delay: Annotated[str | None, typer.Option(help="e.g. 5m", envvar="HIGHTIDE_DELAY")] = None,
    idempotency_key: Annotated[str | None, typer.Option(envvar="HIGHTIDE_IDEMPOTENCY_KEY")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Repeatable.", envvar="HIGHTIDE_TAG")] = None,
    wait: Annotated[bool, typer.Option("--wait", envvar="HIGHTIDE_WAIT", help="Wait for the run to finish.")] = False,
    api_url: ApiUrl = None,
    secret_key: SecretKey = None,
) -> None:
    """Trigger a run from a shell."""
    try:
        body = json.loads(payload)
    except json.JSONDecodeError as exc:
        fail(f"--payload is not valid JSON: {exc}")

    async def go() -> None:
        from hightide.sdk.client import AsyncClient

        async with AsyncClient(api_url=api_url, secret_key=secret_key) as client:
            handle = await client.trigger(task_id, body, delay=delay, idempotency_key=idempotency_key, tags=tag)
            console.print(f"{handle.id}" + ("  (cached)" if handle.is_cached else ""))
            if wait:
                run = await client.runs.poll(handle.id)
                _print_run(run.raw)
                if not run.is_success:
                    sys.exit(1)

    asyncio.run(go())


def _print_run(data: dict[str, Any]) -> None:
    console.print_json(json.dumps(data))


async def _with_client(api_url: str | None, secret_key: str | None, fn: Any) -> Any:
    from hightide.sdk.client import AsyncClient

    async with AsyncClient(api_url=api_url, secret_key=secret_key) as client:
        return await fn(client)


@runs_app.command("list")
def runs_list(
    status: Annotated[list[str] | None, typer.Option(help="Repeatable.", envvar="HIGHTIDE_STATUS")] = None,
    task: Annotated[list[str] | None, typer.Option(help="Repeatable.", envvar="HIGHTIDE_TASK")] = None,
    tag: Annotated[str | None, typer.Option(envvar="HIGHTIDE_TAG")] = None,
    limit: Annotated[int, typer.Option(min=1, envvar="HIGHTIDE_LIMIT")] = 20,
    api_url: ApiUrl = None,
    secret_key: SecretKey = None,
) -> None:
    """List runs, newest first."""
    from rich.table import Table

    async def fetch(client: Any) -> list[Any]:
        return [run async for run in client.runs.list(status=status, task=task, tag=tag, limit=limit)]

    found = asyncio.run(_with_client(api_url, secret_key, fetch))
    table = Table("id", "task", "status", "attempts", "created", "finished")
    for run in found:
        table.add_row(
            run.id,
            run.task_id,
            run.status.value,
            str(run.attempt_count),
            run.created_at.strftime("%Y-%m-%d %H:%M:%S") if run.created_at else "",
            run.finished_at.strftime("%H:%M:%S") if run.finished_at else "",
        )
    console.print(table)


@runs_app.command("get")
def runs_get(run_id: str, api_url: ApiUrl = None, secret_key: SecretKey = None) -> None:
    """Show a run as JSON."""
    run = asyncio.run(_with_client(api_url, secret_key, lambda c: c.runs.retrieve(run_id)))
    _print_run(run.raw)


@runs_app.command("cancel")
def runs_cancel(run_id: str, api_url: ApiUrl = None, secret_key: SecretKey = None) -> None:
    """Cancel a run (and its unfinished children)."""
    run = asyncio.run(_with_client(api_url, secret_key, lambda c: c.runs.cancel(run_id)))
    console.print(f"{run.id} {run.status.value}")


@runs_app.command("replay")
def runs_replay(run_id: str, api_url: ApiUrl = None, secret_key: SecretKey = None) -> None:
    """Trigger a new run with the same payload."""
    handle = asyncio.run(_with_client(api_url, secret_key, lambda c: c.runs.replay(run_id)))
    console.print(handle.id)


@keys_app.command("create")
def keys_create(
    env: Annotated[str, typer.Option("--env", envvar="HIGHTIDE_ENV", help="dev, staging or prod.")],
    project: Annotated[str, typer.Option(envvar="HIGHTIDE_PROJECT")] = "default",
    database_url: DatabaseUrl = DEFAULT_SERVER_DB,
) -> None:
    """Print a new secret key for an environment (only its hash is stored)."""
    from hightide.engine.environments import bootstrap, create_key, find_environment
    from hightide.store import open_store

    store = open_store(database_url)
    try:
        store.migrate()
        bootstrap(store, time.time())
        console.print(create_key(store, find_environment(store, env, project), time.time()))
    finally:
        store.close()


@db_app.command("migrate")
def db_migrate(database_url: DatabaseUrl = DEFAULT_SERVER_DB) -> None:
    """Apply schema migrations."""
    from hightide.store import open_store
    from hightide.store.migrate import pending

    store = open_store(database_url)
    try:
        todo = pending(store.engine)
        store.migrate()
        console.print(f"applied {len(todo)} migration(s)" if todo else "the schema is up to date")
    finally:
        store.close()


def main() -> None:
    try:
        app()
    except HightideError as exc:
        fail(exc.message)
    except KeyboardInterrupt:
        sys.exit(130)
