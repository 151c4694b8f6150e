"""``auth``: public access tokens with the default client.

>>> from hightide import auth
>>> token = await auth.create_public_token(read={"runs": [handle.id]}, expires_in="1h")
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from hightide.sdk.client import Duration
from hightide.sdk.defaults import default_client


async def create_public_token(*, read: Mapping[str, Iterable[str]], expires_in: Duration | None = None) -> str:
    """A read-only token for the runs ``read["runs"]`` and the runs tagged ``read["tags"]``."""
    return await default_client().auth.create_public_token(read=read, expires_in=expires_in)
