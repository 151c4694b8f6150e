"""``hightide server`` and ``hightide worker``: the self-hosted processes."""

from __future__ import annotations

import asyncio
import secrets
import signal

from rich.markup import escape

from hightide.cli.embedded import EmbeddedServer, check_port
from hightide.cli.output import console, print_event
from hightide.config import ClientSettings
from hightide.engine.signin import FIRST_ADMIN, SignIn, login_url
from hightide.sdk.http import ApiSession
from hightide.server import ServerSettings
from hightide.store import open_store
from hightide.store.migrate import pending
from hightide.worker.api import WorkerApi
from hightide.worker.supervisor import Supervisor, WorkerOptions


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def run_server(settings: ServerSettings, host: str, port: int) -> None:
    check_port(host, port)
    store = open_store(settings.database_url)
    if settings.migrate:  # before the server's start-up timeout: a migration may build indexes for minutes
        todo = await asyncio.to_thread(pending, store.engine)
        if todo:
            console.print(f"applying {len(todo)} database migration(s): {', '.join(todo)}")
            await asyncio.to_thread(store.migrate)
    server = EmbeddedServer(settings, store, host, port)
    await server.start()
    console.print(f"[bold]Hightide server[/] on http://{host}:{port}  (API docs /api/docs, dashboard /)")
    # After start: the server's lifespan migrated the database.
    token = await asyncio.to_thread(SignIn(store).first_admin_link)
    if token is not None:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        url = login_url(settings.public_url or f"http://{shown}:{port}", token)
        console.print(
            f"[bold]First start:[/] created the dashboard admin {FIRST_ADMIN}. Sign in with this link"
            " (it works once, for 24 hours; `hightide users login-link` prints more):"
        )
        console.print(f"[bold]Dashboard:[/] {escape(url)}")
    console.print(
        f"[dim]create a key for an environment: hightide keys create --env dev --database-url {settings.database_url}[/]"
    )
    stop = _stop_on_signals()
    serving = asyncio.create_task(server.wait())
    await asyncio.wait({serving, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
    await server.stop()


async def run_worker(settings: ClientSettings, options: WorkerOptions) -> None:
    session = ApiSession(settings.api_url, settings.secret_key)
    supervisor = Supervisor(WorkerApi(session, f"wkr_{secrets.token_hex(6)}"), options, print_event)
    try:
        await supervisor.load_version()
        console.print(f"[bold]Hightide worker[/] connected to {settings.api_url}, {options.concurrency} slot(s)")
        await supervisor.run(_stop_on_signals())
    finally:
        await session.aclose()
