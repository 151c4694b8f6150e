"""Bearer auth with environment secret keys.

``authenticate`` runs before the request body is read (``routing.ApiRoute`` calls it for every
operation that takes ``CurrentEnv``); the ``CurrentEnv`` dependency then hands the operation the
environment it found."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from hightide.engine.environments import AUTH_HEADER_HELP, KeyAuthenticator
from hightide.engine.public_tokens import is_public_token
from hightide.errors import AuthenticationError, PermissionDeniedError
from hightide.store.records import Environment


async def authenticate(request: Request) -> Environment:
    header = request.headers.get("authorization")
    if header is None:
        raise AuthenticationError(f"missing Authorization header: {AUTH_HEADER_HELP}")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthenticationError(f"malformed Authorization header: {AUTH_HEADER_HELP}")
    if is_public_token(secret.strip()):
        raise PermissionDeniedError(
            f"a public access token can only read runs ({request.method} {request.url.path} needs a secret key): "
            "use it with GET /api/v1/runs/{id} and /realtime/v1/runs"
        )
    authenticator: KeyAuthenticator = request.app.state.authenticator
    # Most requests hit the cache; only a miss reads the database (off the event loop).
    env = authenticator.cached(secret.strip())
    if env is None:
        env = await run_in_threadpool(authenticator.authenticate, secret.strip())
    return env


async def current_environment(request: Request) -> Environment:  # async: no thread hop
    env: Environment | None = getattr(request.state, "environment", None)
    if env is None:  # a route outside ApiRoute would have read its body before authenticating
        raise RuntimeError(f"{request.url.path} takes CurrentEnv but is not an ApiRoute")
    return env


CurrentEnv = Annotated[Environment, Depends(current_environment)]
