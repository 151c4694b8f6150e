"""Options shared by the commands, and the helpers that turn their values into requests."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from hightide.errors import AuthenticationError, ConfigError

if TYPE_CHECKING:
    from hightide.sdk.client import AsyncClient

T = TypeVar("T")

ApiUrl = Annotated[
    str | None,
    typer.Option("--api-url", "-a", envvar="HIGHTIDE_API_URL", help="Server URL (default: from .hightide/dev.env)."),
]
SecretKey = Annotated[
    str | None,
    typer.Option(
        "--secret-key", envvar="HIGHTIDE_SECRET_KEY", help="Environment secret key (default: from .hightide/dev.env)."
    ),
]


DEFAULT_SERVER_DB = ".hightide/server.db"
DatabaseUrl = Annotated[
    str,
    typer.Option(
        "--database-url", envvar="HIGHTIDE_DATABASE_URL", help="SQLite path / sqlite:///PATH / postgresql://..."
    ),
]
PublicUrl = Annotated[
    str | None,
    typer.Option(
        "--public-url",
        envvar="HIGHTIDE_PUBLIC_URL",
        help="The server's address as a browser reaches it, for login links (default: http://HOST:PORT it listens on,"
        " http://127.0.0.1:3030 for `users`).",
    ),
]
Retention = Annotated[
    str,
    typer.Option(
        envvar="HIGHTIDE_RETENTION",
        help="Finished runs, with their logs, spans and journal, are deleted once older than this (e.g. 7d, 12h);"
        " 'forever' keeps them.",
    ),
]
KEEP_FOREVER = ("forever", "never", "off", "0")
MachineMemoryScale = Annotated[
    float,
    typer.Option(
        "--machine-memory-scale",
        envvar="HIGHTIDE_MACHINE_MEMORY_SCALE",
        min=0.01,
        max=64,
        help="Times each machine preset's memory limit (micro 0.25 GB ... large-2x 16 GB); below 1 on a host"
        " smaller than the presets assume. A runner over its run's limit is killed (OutOfMemoryError).",
    ),
]


def retention_seconds(value: str) -> float | None:
    """``--retention``'s value in seconds; ``None`` for 'forever'. A bad value is a one-line error."""
    from hightide.core.durations import parse_duration

    if value.strip().lower() in KEEP_FOREVER:
        return None
    seconds = parse_duration(value, field="--retention")
    if seconds < 60:
        raise ConfigError(f"--retention {value}: keep finished runs at least a minute (or say 'forever')")
    return seconds


JsonOut = Annotated[
    bool, typer.Option("--json", envvar="HIGHTIDE_JSON", help="Print JSON (the API's fields) instead of text.")
]

KEY_HELP = (
    "set HIGHTIDE_SECRET_KEY (or --secret-key) to a key of the environment (`hightide keys create` prints one), "
    "or run this command inside a project where `hightide dev` is running"
)


def any_case(given: Any) -> Any:
    """A ``--status`` option's callback: statuses as a person types them (``failed``) are the API's."""
    if isinstance(given, str):
        return given.upper()
    return [value.upper() for value in given] if given else given


def read_json(value: str, flag: str) -> Any:
    """A JSON value given on the command line: the JSON itself, ``@path`` for a file, ``-`` for stdin."""
    if value == "-":
        text, source = sys.stdin.read(), "stdin"
    elif value.startswith("@"):
        path = Path(value[1:]).expanduser()
        try:
            text, source = path.read_text(), str(path)
        except FileNotFoundError:
            raise ConfigError(f"{flag} {value}: no such file {path}") from None
        except OSError as exc:
            raise ConfigError(f"{flag} {value}: cannot read {path}: {exc.strerror}") from None
    else:
        text, source = value, ""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f" ({source})" if source else ""
        raise ConfigError(f"{flag} is not valid JSON{where}: {exc}") from None


def call(api_url: str | None, secret_key: str | None, fn: Callable[[AsyncClient], Awaitable[T]]) -> T:
    """Run ``fn`` with a client for the given (or discovered) server; errors become CLI wording."""
    from hightide.config import client_settings
    from hightide.sdk.client import AsyncClient

    try:
        settings = client_settings(api_url, secret_key)
    except ConfigError:
        raise ConfigError(f"no secret key: {KEY_HELP}") from None

    async def go() -> T:
        async with AsyncClient(api_url=settings.api_url, secret_key=settings.secret_key) as client:
            return await fn(client)

    try:
        return asyncio.run(go())
    except AuthenticationError:
        shown = settings.secret_key[:10]
        raise AuthenticationError(
            f"{settings.api_url} refused the secret key {shown}... (invalid secret key): {KEY_HELP}"
        ) from None


def request(method: str, path: str, api_url: str | None, secret_key: str | None, body: Any = None) -> Any:
    """One API request (``body`` as JSON); its answer's JSON."""

    async def go(client: AsyncClient) -> Any:
        return await client.session.request(method, path, **({} if body is None else {"json": body}))

    return call(api_url, secret_key, go)


def every_page(path: str, params: dict[str, Any], api_url: str | None, secret_key: str | None) -> list[Any]:
    """The items of every page of a listing (``data``, followed by ``next_cursor``)."""

    async def go(client: AsyncClient) -> list[Any]:
        query: dict[str, Any] = {"limit": 100, **params}
        out: list[Any] = []
        while True:
            page = await client.session.request("GET", path, params=query)
            out += page["data"]
            if not page.get("next_cursor"):
                return out
            query["cursor"] = page["next_cursor"]

    return call(api_url, secret_key, go)


def print_json(data: Any) -> None:
    """Machine-readable output: plain JSON on stdout, whatever the terminal."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
