"""What a request may cost the server before anything trusts it: a byte limit on its body, counted as
the body streams in (chunked or not), and a nesting limit on the JSON in it."""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hightide.engine.payloads import MAX_VALUE_DEPTH, nests_deeper
from hightide.errors import PayloadTooLargeError, ValidationError
from hightide.server.errors import RequestError, error_body

MAX_JSON_DEPTH = 2 * MAX_VALUE_DEPTH
"""Arrays and objects nested deeper than this in a request body are refused (422) before the body
becomes Python objects of a depth that later steps (validation, storage, the serialisation of
responses, which fails past about 250 levels) could not handle: a 500 or a RecursionError."""


def _too_large(limit: int, size: int | None = None) -> PayloadTooLargeError:
    what = "the request body" if size is None else f"the request body of {size:,} bytes"
    return PayloadTooLargeError(
        f"{what} is over the limit of {limit:,} bytes; send large values by reference (a URL or an object key)",
        details={"limit": limit},
    )


class BodyLimit:
    """Refuse a request body over ``limit`` bytes without holding more than ``limit`` of it: at once
    (413) when its Content-Length says so, else as soon as the bytes received pass the limit, which
    covers chunked bodies. The refusal is raised to whoever is reading the body, so it becomes the
    one error response. Pure ASGI: it sits on every request, so it stays cheap.

    A response sent before its request's body was read whole (a 401 before the body of an
    unauthenticated request, a 413) closes the connection: otherwise the server would go on reading,
    and discarding, the rest of a body it has refused."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit():
                declared = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if declared is not None and declared > self.limit:
            exc = _too_large(self.limit, declared)
            response = JSONResponse(
                error_body(exc.code, exc.message, exc.details), status_code=413, headers={"Connection": "close"}
            )
            await response(scope, receive, send)
            return
        received = 0
        body_read = not chunked and not declared

        async def limited_receive() -> Message:
            nonlocal received, body_read
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise RequestError(_too_large(self.limit))
                if not message.get("more_body", False):
                    body_read = True
            return message

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not body_read:
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, limited_receive, closing_send)


def parse_json(raw: bytes) -> Any:
    """The JSON value of a request body, refusing (``ValidationError``) what is not JSON or nests
    deeper than ``MAX_JSON_DEPTH``."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:  # JSONDecodeError, and UnicodeDecodeError for bytes that are not UTF-8
        raise ValidationError(f"the request body is not valid JSON: {exc}", details={"field": "body"}) from exc
    # Only a body with more brackets than the limit can nest deeper than it: most never pay the walk.
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and nests_deeper(value, MAX_JSON_DEPTH):
        raise _too_deep()
    return value


def _too_deep() -> ValidationError:
    return ValidationError(
        f"the request body nests arrays or objects deeper than {MAX_JSON_DEPTH} levels",
        details={"field": "body", "limit": MAX_JSON_DEPTH},
    )
