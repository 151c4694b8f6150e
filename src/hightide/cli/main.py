"""The ``hightide`` command. Every flag also reads a ``HIGHTIDE_*`` environment variable."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from hightide.cli.alerts import alerts_app
from hightide.cli.options import (
    DEFAULT_SERVER_DB,
    KEY_HELP,
    ApiUrl,
    DatabaseUrl,
    MachineMemoryScale,
    PublicUrl,
    Retention,
    SecretKey,
    retention_seconds,
)
from hightide.cli.output import console, fail
from hightide.cli.queues import queues_app
from hightide.cli.runs import runs_app, tokens_app, trigger
from hightide.cli.schedules import schedules_app
from hightide.cli.users import users_app
from hightide.errors import AuthenticationError, HightideError
from hightide.types import MAX_CONCURRENCY, MAX_PREFETCH

app = typer.Typer(
    name="hightide",
    help="Hightide: background tasks for Python. Durable, observable, no timeouts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
keys_app = typer.Typer(help="Manage environment secret keys (operators).", no_args_is_help=True)
db_app = typer.Typer(help="Database administration.", no_args_is_help=True)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        console.print(f"hightide {version('hightide')}")
        raise typer.Exit()


@app.callback()
def _options(
    _version: Annotated[
        bool | None,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Options of ``hightide`` itself, before a command (the help above is the app's)."""


app.add_typer(runs_app, name="runs")
app.add_typer(tokens_app, name="tokens")
app.add_typer(queues_app, name="queues")
app.add_typer(schedules_app, name="schedules")
app.add_typer(alerts_app, name="alerts")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")


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
        str | None,
        typer.Option(
            "--database-url",
            envvar="HIGHTIDE_DEV_DATABASE_URL",
            help="Dev's own database (default .hightide/dev.db); HIGHTIDE_DATABASE_URL, the server's, is not used.",
        ),
    ] = None,
    lease_seconds: Annotated[
        float,
        typer.Option(envvar="HIGHTIDE_LEASE_SECONDS", min=1, help="A run whose worker is silent this long is retried."),
    ] = 30.0,
    machine_memory_scale: MachineMemoryScale = 1.0,
) -> None:
    """Run this project's tasks locally: embedded server + worker, hot reload, offline."""
    from hightide.cli.dev import DevOptions, run_dev
    from hightide.config import load_project_config

    config = load_project_config()
    options = DevOptions(host, port, max_concurrent_runs, database_url, lease_seconds, machine_memory_scale)
    asyncio.run(run_dev(config, options))


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
            envvar="HIGHTIDE_CONCURRENCY_LIMIT",
            min=1,
            help="Runs executing at once in each environment, applied at start (default: keep each one's, 100 at first).",
        ),
    ] = None,
    public_url: PublicUrl = None,
    retention: Retention = "30d",
) -> None:
    """Self-hosted API + engine + dashboard. Creates project `default` (dev, staging, prod) on first start, and
    the admin admin@localhost with a one-time login link on a database with no users."""
    from hightide.cli.serve import run_server
    from hightide.server import ServerSettings

    settings = ServerSettings(
        database_url=database_url,
        lease_seconds=lease_seconds,
        max_payload_bytes=max_payload_bytes,
        environment_concurrency=concurrency_limit,
        public_url=public_url,
        retention=retention_seconds(retention),
    )
    asyncio.run(run_server(settings, host, port))


@app.command()
def worker(
    api_url: ApiUrl = None,
    secret_key: SecretKey = None,
    concurrency: Annotated[
        int, typer.Option(envvar="HIGHTIDE_CONCURRENCY", min=1, max=MAX_CONCURRENCY, help="Runs executing at once.")
    ] = 4,
    prefetch: Annotated[
        int | None,
        typer.Option(
            envvar="HIGHTIDE_PREFETCH",
            min=0,
            max=MAX_PREFETCH,
            help=f"Most runs claimed ahead of free slots; fewer when runs are long (default: 32 x concurrency,"
            f" at most {MAX_PREFETCH}).",
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
    machine_memory_scale: MachineMemoryScale = 1.0,
) -> None:
    """Run the tasks of the current project against a server."""
    from hightide.cli.serve import run_worker
    from hightide.config import client_settings, load_project_config
    from hightide.worker.supervisor import WorkerOptions

    config = load_project_config()
    settings = client_settings(api_url, secret_key)
    prefetch = min(32 * concurrency, MAX_PREFETCH) if prefetch is None else prefetch
    options = WorkerOptions(
        root=config.root or Path.cwd(),
        concurrency=concurrency,
        prefetch=prefetch,
        runs_per_process=runs_per_process,
        shutdown_grace=shutdown_grace,
        machine_memory_scale=machine_memory_scale,
    )
    asyncio.run(run_worker(settings, options))


app.command()(trigger)  # after init, dev, server and worker in --help


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
    except AuthenticationError as exc:
        # The server's wording is for HTTP clients (headers); a shell user sets a variable.
        fail(exc.message if KEY_HELP in exc.message else f"the server refused the secret key: {KEY_HELP}")
    except HightideError as exc:
        fail(exc.message)
    except KeyboardInterrupt:
        sys.exit(130)
