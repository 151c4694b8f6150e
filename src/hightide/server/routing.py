"""The route class of every API operation: authentication before the body, and bounded JSON.

FastAPI reads and parses a declared body before it solves any dependency, so an auth dependency
alone would let an unauthenticated client make the server read and parse its body. ``ApiRoute``
authenticates first, for every operation that takes the ``CurrentEnv`` dependency (a secret key) or
``CurrentReader`` (a secret key or a public access token, ``public_access.py``), and parses JSON
bodies with ``limits.parse_json``."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from hightide.errors import HightideError
from hightide.server.auth import authenticate, current_environment
from hightide.server.errors import RequestError
from hightide.server.limits import parse_json
from hightide.server.public_access import authenticate_reader, current_reader


class ApiRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = parse_json(await self.body())
            except HightideError as exc:
                raise RequestError(exc) from exc
        return self._json


def needs_authentication(dependant: Dependant) -> bool:
    return any(d.call is current_environment or needs_authentication(d) for d in dependant.dependencies)


def reads_runs(dependant: Dependant) -> bool:
    """Whether the operation takes ``CurrentReader``: a secret key or a public access token."""
    return any(d.call is current_reader or reads_runs(d) for d in dependant.dependencies)


class ApiRoute(APIRoute):
    @property
    def authenticated(self) -> bool:
        return needs_authentication(self.dependant) or reads_runs(self.dependant)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        reader = reads_runs(self.dependant)
        authenticated = needs_authentication(self.dependant)

        async def route_handler(request: Request) -> Response:
            request = ApiRequest(request.scope, request.receive)
            if reader:
                request.state.reader = await authenticate_reader(request)
                request.state.environment = request.state.reader.environment
            elif authenticated:
                request.state.environment = await authenticate(request)
            return await handler(request)

        return route_handler
