"""``configure`` and the default client behind module-level helpers (one per event loop, since an
HTTP connection pool belongs to the loop that opened it)."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from hightide.sdk.client import AsyncClient

_settings: dict[str, Any] = {}
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncClient] = weakref.WeakKeyDictionary()


def configure(*, api_url: str | None = None, secret_key: str | None = None) -> None:
    """Set the server and key for module-level calls (``my_task.trigger``, ``runs.retrieve``...).

    Without it the SDK reads ``HIGHTIDE_API_URL`` / ``HIGHTIDE_SECRET_KEY``, then ``.hightide/dev.env``.
    """
    _settings.update({k: v for k, v in {"api_url": api_url, "secret_key": secret_key}.items() if v})
    _clients.clear()


def default_client() -> AsyncClient:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = AsyncClient(**_settings)
        _clients[loop] = client
    return client
