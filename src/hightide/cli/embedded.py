"""Running the server in-process (``hightide dev`` and ``hightide server``) with uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import time
from collections.abc import Iterator

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


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the command owns SIGINT/SIGTERM and decides the shutdown order


KEEP_ALIVE_SECONDS = 65


class EmbeddedServer:
    """The API server running inside this process, on this event loop."""

    def __init__(self, settings: ServerSettings, store: Store, host: str, port: int) -> None:
        self.app = create_app(settings, store)
        config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=3,
            # Idle connections stay open longer than clients keep them (httpx: 5 s), so that a
            # client never sends on a connection the server is closing at that moment.
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
        self.server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 15.0) -> None:
        self._task = asyncio.create_task(self.server.serve(), name="server")
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if self._task.done():
                self._task.result()
                raise ConfigError("the embedded server stopped while starting")
            if time.monotonic() > deadline:
                raise ConfigError("the embedded server did not start in time")
            await asyncio.sleep(0.02)

    async def wait(self) -> None:
        assert self._task is not None
        await self._task

    async def stop(self) -> None:
        self.app.state.engine.stop_polling()  # end long-polls so connections close at once
        self.server.should_exit = True
        if self._task is not None:
            await self._task


def dev_key(store: Store, existing: str | None) -> str:
    """The dev environment's key: reuse the one in .hightide/dev.env if still valid."""
    now = time.time()
    bootstrap(store, now)
    env = find_environment(store, "dev")
    if existing and store.environments.environment_for_key(hash_key(existing)) is not None:
        return existing
    return create_key(store, env, now)
