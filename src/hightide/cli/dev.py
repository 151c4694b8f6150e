"""``hightide dev``: an embedded server and a worker for this project, with hot reload."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path

from rich.markup import escape
from watchfiles import awatch

from hightide.cli.devlock import DevLock
from hightide.cli.embedded import EmbeddedServer, check_port, dev_key
from hightide.cli.output import console, event_printer
from hightide.config import DEV_ENV_FILE, STATE_DIR, ProjectConfig, dev_database, env, read_env_file
from hightide.engine.environments import DEFAULT_PROJECT
from hightide.engine.signin import SignIn, login_url
from hightide.sdk.http import ApiSession
from hightide.server import ServerSettings
from hightide.store import open_store
from hightide.worker.api import WorkerApi
from hightide.worker.processes import RunnerStartError
from hightide.worker.supervisor import Supervisor, WorkerOptions

DEV_ENV = "dev"  # the environment dev runs in: its key's (see embedded.dev_key)


def run_page_url(base_url: str, project: str, env: str, run_id: str) -> str:
    """The dashboard page of a run (SPEC §5): ``{base}/projects/{project}/env/{env}/runs/{run_id}``."""
    return f"{base_url.rstrip('/')}/projects/{project}/env/{env}/runs/{run_id}"


def write_dev_env(root: Path, api_url: str, key: str, dashboard_url: str | None = None) -> Path:
    path = root / STATE_DIR / DEV_ENV_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    dashboard = f"HIGHTIDE_DASHBOARD_URL={dashboard_url}\n" if dashboard_url else ""
    path.write_text(
        "# Written by `hightide dev`: the SDK reads it when HIGHTIDE_* variables are not set.\n"
        f"HIGHTIDE_API_URL={api_url}\nHIGHTIDE_SECRET_KEY={key}\n{dashboard}"
    )
    path.chmod(0o600)
    return path


@dataclass(frozen=True)
class DevOptions:
    """``hightide dev``'s flags."""

    host: str = "127.0.0.1"
    port: int = 3030
    concurrency: int = 8
    database: str | None = None
    lease_seconds: float = 30.0
    machine_memory_scale: float = 1.0


async def run_dev(config: ProjectConfig, options: DevOptions) -> None:
    root = config.root or Path.cwd()
    state = root / STATE_DIR
    state.mkdir(exist_ok=True)
    api_url = f"http://{options.host}:{options.port}"
    lock = DevLock.acquire(state, api_url)  # before anything else: a second dev must not touch dev.env
    try:
        await _run_dev(config, root, state, api_url, options)
    finally:
        lock.release()


async def _run_dev(config: ProjectConfig, root: Path, state: Path, api_url: str, options: DevOptions) -> None:
    host, port, lease_seconds = options.host, options.port, options.lease_seconds
    check_port(host, port)
    db_url, db_source = dev_database(root, options.database)
    store = open_store(db_url)
    store.migrate()
    env_file = state / DEV_ENV_FILE
    existing = read_env_file(env_file).get("HIGHTIDE_SECRET_KEY") if env_file.is_file() else None
    key = dev_key(store, existing)
    # A new one-time link on each start, for dev's own admin (admin@localhost); see docs/dashboard.md.
    dashboard_url = login_url(api_url, SignIn(store).local_admin_link())
    write_dev_env(root, api_url, key, dashboard_url)

    settings = ServerSettings(database_url=db_url, migrate=False, lease_seconds=lease_seconds)
    server = EmbeddedServer(settings, store, host, port)
    await server.start()
    console.print(f"[bold]Hightide dev[/] server on [link={api_url}]{api_url}[/]  (API docs {api_url}/api/docs)")
    console.print(f"[bold]Dashboard:[/] {escape(dashboard_url)}")
    url = store.engine.url
    sqlite = url.get_backend_name() == "sqlite"
    shown = (url.database or ":memory:") if sqlite else url.render_as_string(hide_password=True)
    console.print(f"[dim]project {root}  key in {env_file}[/]")
    console.print(f"[dim]database {escape(shown)} ({db_source})[/]")
    if env("DATABASE_URL") and db_source == "default":
        console.print(
            "[yellow]HIGHTIDE_DATABASE_URL is set and not used: it is for `hightide server`; "
            "pass --database-url or set HIGHTIDE_DEV_DATABASE_URL to give dev another database[/]"
        )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    session = ApiSession(api_url, key)
    supervisor = Supervisor(
        WorkerApi(session, f"wkr_dev_{secrets.token_hex(4)}"),
        WorkerOptions(
            root=root,
            concurrency=options.concurrency,
            dev=True,
            shutdown_grace=0,
            machine_memory_scale=options.machine_memory_scale,
        ),
        event_printer(lambda run_id: run_page_url(api_url, DEFAULT_PROJECT, DEV_ENV, run_id)),
    )
    watcher = None
    try:
        if not await _first_version(root, config, supervisor, stop):
            return
        watcher = asyncio.create_task(_watch(root, config, supervisor, stop), name="watch")
        await supervisor.run(stop, cancel_on_stop=True)
    finally:
        stop.set()
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await session.aclose()
        await server.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        console.print("[dim]stopped[/]")


async def _first_version(root: Path, config: ProjectConfig, supervisor: Supervisor, stop: asyncio.Event) -> bool:
    """Import the tasks and register them. While they cannot be imported (a syntax error, a missing
    module), say why and wait for a file to change, as a reload does. False if stopped meanwhile."""
    while not stop.is_set():
        try:
            await supervisor.load_version()
            return True
        except RunnerStartError as exc:
            console.print(f"[red]error: the tasks could not be imported: {escape(str(exc))}[/]")
            if exc.details:
                console.print(escape(exc.details.rstrip()), highlight=False)
            console.print("[dim]fix it and save: dev imports the tasks again when a file changes (Ctrl-C to stop)[/]")
        async with contextlib.aclosing(_py_changes(root, config, stop)) as changes:
            await anext(changes, None)
    return False


async def _py_changes(root: Path, config: ProjectConfig, stop: asyncio.Event) -> AsyncGenerator[None, None]:
    """Once per change to a ``.py`` file under the task folders (or to the config), until stopped."""
    watched = [root / d for d in config.dirs if (root / d).exists()] + [root / "hightide.config.py"]
    async for changes in awatch(*watched, stop_event=stop, debounce=200, step=50):
        if any(path.endswith(".py") for _, path in changes):
            yield


async def _watch(root: Path, config: ProjectConfig, supervisor: Supervisor, stop: asyncio.Event) -> None:
    """A change under the task folders (or to the config) registers a new version."""
    async for _ in _py_changes(root, config, stop):
        console.print("[dim]change detected, reloading...[/]")
        await supervisor.reload()
