"""Who may read a run: a secret key (everything of its environment) or a public access token (the
runs and tags it names).

Operations that take ``CurrentReader`` accept both; ``routing.ApiRoute`` calls
``authenticate_reader`` for them before anything is read or streamed. Everywhere else a public
token is refused with a 403 (``auth.authenticate``). On the realtime routes a public token may also
come as ``?access_token=ht_pub_...`` (a browser's ``EventSource`` cannot send headers); a secret
key never may: URLs end up in logs.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from hightide.engine.public_tokens import Reader, is_public_token
from hightide.engine.runs import RunEngine
from hightide.errors import AuthenticationError, NotFoundError, PermissionDeniedError
from hightide.server.auth import authenticate
from hightide.store.records import Run

URL_TOKEN_PREFIX = "/realtime/"


async def authenticate_reader(request: Request) -> Reader:
    engine: RunEngine = request.app.state.engine
    header = request.headers.get("authorization")
    if header is None and request.url.path.startswith(URL_TOKEN_PREFIX):
        token = request.query_params.get("access_token")
        if token is not None:
            if not is_public_token(token):
                raise AuthenticationError(
                    "access_token: only a public access token (ht_pub_...) may be sent in a URL; "
                    "send a secret key in the Authorization header"
                )
            return await run_in_threadpool(engine.public_tokens.verify, token)
    if header is not None:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() == "bearer" and is_public_token(secret.strip()):
            # Verifying is an HMAC; only an environment not seen for a minute reads the database.
            return await run_in_threadpool(engine.public_tokens.verify, secret.strip())
    return Reader(await authenticate(request))


async def current_reader(request: Request) -> Reader:  # async: no thread hop
    reader: Reader | None = getattr(request.state, "reader", None)
    if reader is None:  # a route outside ApiRoute would have read its body before authenticating
        raise RuntimeError(f"{request.url.path} takes CurrentReader but is not an ApiRoute")
    return reader


CurrentReader = Annotated[Reader, Depends(current_reader)]
"""A secret key's environment, or a public token's grant: see ``Reader.may_read_run``."""


def _denied(what: str) -> PermissionDeniedError:
    return PermissionDeniedError(
        f"this public access token does not name {what}; make one that does", details={"reason": "not_named"}
    )


def check_may_name_run(reader: Reader, run_id: str) -> None:
    """Refuse at once a public token that names neither ``run_id`` nor any tag (nothing to read)."""
    grant = reader.grant
    if grant is not None and not grant.tags and run_id not in grant.runs:
        raise _denied(f"run {run_id!r}")


def check_may_read_run(reader: Reader, run_id: str, run: Run | None) -> Run:
    """``run`` (``run_id`` as read in the reader's environment, or None) if the reader may read it.
    A public token learns nothing of a run it does not name: 403 whether or not it exists."""
    if run is None or run.environment_id != reader.environment.id:
        if reader.grant is not None and run_id not in reader.grant.runs:
            raise _denied(f"run {run_id!r}")
        raise NotFoundError(
            f"run {run_id!r} not found in environment {reader.environment.slug!r}", details={"run": run_id}
        )
    if not reader.may_read_run(run):
        raise _denied(f"run {run_id!r} or any of its tags")
    return run


def check_may_read_tag(reader: Reader, tag: str) -> None:
    if not reader.may_read_tag(tag):
        raise _denied(f"tag {tag!r}")
