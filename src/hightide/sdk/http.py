"""The HTTP session shared by the SDK, the worker and the CLI: auth header and error mapping."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from hightide.errors import (
    ERRORS_BY_CODE,
    AuthenticationError,
    ConflictError,
    HightideConnectionError,
    HightideError,
    NotFoundError,
    PayloadTooLargeError,
    ServerError,
    ValidationError,
)

if TYPE_CHECKING:
    import ssl

    import httpx

USER_AGENT = "hightide-python/0.1"
_propagator = TraceContextTextMapPropagator()  # W3C `traceparent`, which the server reads


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The verifying TLS context every client of this process shares (httpx's default: the
    ``SSL_CERT_FILE``/``SSL_CERT_DIR`` named by the environment, else certifi's bundle). Left to
    itself httpx builds one per client, loading the whole CA bundle each time: tens of milliseconds
    of CPU for every ``Client`` an app makes."""
    import httpx

    return httpx.create_ssl_context()


class ApiSession:
    """An ``httpx.AsyncClient`` bound to one server and one secret key. Errors from the API become
    the matching ``HightideError`` subclass carrying the server's message."""

    def __init__(self, api_url: str, secret_key: str, timeout: float = 30.0) -> None:
        import httpx  # here, not at the top: runner processes that never call the API start faster

        self.api_url = api_url.rstrip("/")
        self.secret_key = secret_key
        self._client = httpx.AsyncClient(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {secret_key}", "User-Agent": USER_AGENT},
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
            verify=tls_context(),
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Any = None,
        timeout: float | None = None,
    ) -> Any:
        import httpx

        headers: dict[str, str] = {}
        _propagator.inject(headers)  # runs triggered by this call join the caller's trace
        try:
            response = await self._client.request(
                method,
                path,
                json=json,
                params=params,
                headers=headers or None,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            )
        except httpx.TransportError as exc:
            raise HightideConnectionError(
                f"could not reach the Hightide server at {self.api_url} ({type(exc).__name__}: {exc}); "
                "is `hightide dev` or `hightide server` running?"
            ) from exc
        if response.status_code >= 400:
            raise _error_from(response)
        try:
            return response.json()
        except ValueError:  # a proxy's page in place of the server's answer
            raise ServerError(
                f"HTTP {response.status_code} from {method} {response.request.url} is not JSON: {response.text[:200]}"
            ) from None

    @asynccontextmanager
    async def stream(
        self, method: str, path: str, *, params: Any = None, headers: dict[str, str] | None = None, idle: float = 60.0
    ) -> AsyncIterator[httpx.Response]:
        """A streamed response (Server-Sent Events), once its status says it is one: an error
        status raises its ``HightideError``; a connection lost, or ``idle`` seconds without a byte,
        raises ``HightideConnectionError`` (also while the body is read)."""
        import httpx

        try:
            async with self._client.stream(
                method, path, params=params, headers=headers, timeout=httpx.Timeout(idle, connect=10.0)
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise _error_from(response)
                yield response
        except httpx.TransportError as exc:
            raise HightideConnectionError(
                f"the stream from {self.api_url}{path} was interrupted ({type(exc).__name__}: {exc})"
            ) from exc

    async def aclose(self) -> None:
        await self._client.aclose()


# For an error whose code this version does not know: the class its status means.
_ERRORS_BY_STATUS: dict[int, type[HightideError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: ValidationError,
}
# Statuses that say "not now" rather than "not this": a call that met them may succeed if tried again.
_TRANSIENT_STATUSES = frozenset({408, 425, 429})


def _error_from(response: httpx.Response) -> HightideError:
    """The ``HightideError`` of an error response ``{"error": {"code", "message", "details"?}}``, with
    the server's code and message."""
    status = response.status_code
    transient = status >= 500 or status in _TRANSIENT_STATUSES
    default = ServerError if transient else _ERRORS_BY_STATUS.get(status, HightideError)
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str) and isinstance(error.get("message"), str):
        details = error.get("details")
        cls = ERRORS_BY_CODE.get(error["code"], default)
        return cls(error["message"], details=details if isinstance(details, dict) else None, code=error["code"])
    # Not Hightide's answer: something between here and the server (a proxy, a load balancer) spoke
    # for it, so the request may well succeed when tried again.
    text = response.text[:200]
    return ServerError(f"HTTP {status} from {response.request.method} {response.request.url}: {text}")
