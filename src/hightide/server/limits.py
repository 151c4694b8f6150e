"""What a request may cost the server before anything trusts it: a byte limit on its body, counted as
the body streams in (chunked or not), and limits on the nesting and the number of values of the JSON
in it (what the body costs once parsed)."""

from __future__ import annotations

import json
import re
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


MAX_JSON_VALUES = 2_000_000
"""A request body may hold at most this many JSON values (arrays, objects, numbers, strings, ...;
not counting object keys). Parsed, a value costs 30 to 70 bytes of Python objects however few bytes
it takes in JSON (``{}`` is 3 bytes and 64 parsed), so the byte limit alone let a 64 MiB body
become gigabytes; this bounds the parsed body to a few hundred MB whatever its shape."""

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string: each byte can match one way only


def _values(raw: bytes, exact: bool = False) -> int:
    """The number of values in the JSON text ``raw``: one, and each element of an array or object
    but its first follows a comma. Counted in ``raw`` it is an upper bound (brackets and commas in
    strings count too, and empty containers as if they had an element); ``exact`` counts with the
    strings taken out and ``[]`` and ``{}`` as empty (with spaces inside, they still count)."""
    containers = raw.count(b"[") + raw.count(b"{")
    if exact:
        raw = _STRING.sub(b'""', raw)
        containers = raw.count(b"[") + raw.count(b"{") - raw.count(b"[]") - raw.count(b"{}")
    return 1 + raw.count(b",") + containers


def parse_json(raw: bytes, max_values: int = MAX_JSON_VALUES) -> Any:
    """The JSON value of a request body, refusing what is not JSON or nests deeper than
    ``MAX_JSON_DEPTH`` (``ValidationError``), or holds more than ``max_values`` values
    (``PayloadTooLargeError``, before it is parsed)."""
    if _values(raw) > max_values and _values(raw, exact=True) > max_values:
        raise PayloadTooLargeError(
            f"the request body holds more than {max_values:,} JSON values (arrays, objects, numbers, "
            "strings); send fewer items per request, or large values by reference (a URL or an object key)",
            details={"field": "body", "limit": max_values},
        )
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
