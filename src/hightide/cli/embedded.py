"""Running the server in-process (``hightide dev`` and ``hightide server``) with uvicorn."""

from __future__ import annotations

import asyncio
import errno
import socket
import time

import uvicorn

from hightide.engine.environments import bootstrap, create_key, find_environment, hash_key
from hightide.errors import ConfigError
from hightide.server import ServerSettings, create_app
from hightide.store import Store


def check_port(host: str, port: int) -> None:
    """Fail early, with one clear line, if the port is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {port} on {host} is already in use; pass --port to use another") from exc
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def uvicorn_server(settings: ServerSettings, store: Store, host: str, port: int) -> uvicorn.Server:
    app = create_app(settings, store)
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=3
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]  # the command owns signals
    return server


async def wait_started(server: uvicorn.Server, task: asyncio.Task[None], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not server.started:
        if task.done():
            task.result()
            raise ConfigError("the embedded server stopped while starting")
        if time.monotonic() > deadline:
            raise ConfigError("the embedded server did not start in time")
        await asyncio.sleep(0.02)


def dev_key(store: Store, existing: str | None) -> str:
    """The dev environment's key: reuse the one in .hightide/dev.env if still valid."""
    now = time.time()
    bootstrap(store, now)
    env = find_environment(store, "dev")
    if existing and store.environment_for_key(hash_key(existing)) is not None:
        return existing
    return create_key(store, env, now)
