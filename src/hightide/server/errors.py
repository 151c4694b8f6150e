"""The one map from error codes to HTTP statuses, and the one JSON shape of every error response:
``{"error": {"code": ..., "message": ..., "details": {...}}}``, whatever raised it (the engine, request
validation, the router for an unknown path or a wrong method, the body limit, or a bug)."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hightide.errors import HightideError

log = logging.getLogger("hightide.server")

HTTP_STATUS = {
    "bad_request": 400,
    "validation_error": 422,
    "payload_too_large": 413,
    "authentication_error": 401,
    "permission_denied": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "already_exists": 409,
    "non_determinism": 409,
    "unsupported_media_type": 415,
    "config_error": 400,
    "server_error": 500,
}

# The code of an error that reached us as a bare HTTP status (Starlette's router, FastAPI's own checks).
_CODE_OF_STATUS = {
    400: "bad_request",
    401: "authentication_error",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
}

_DESCRIPTIONS = {
    400: "The request cannot be read",
    401: "No valid credentials (a missing, malformed or unknown secret key, or a wrong signature)",
    403: "The credentials do not allow this",
    404: "The run, task, token or worker version does not exist in this environment",
    409: "The request does not fit the current state (a finished run, a completed token, a stale report)",
    413: "The request body or a value in it is over its size limit",
    422: "Invalid input: a malformed body, a field of the wrong type or out of range",
    500: "An unexpected error; the server log has the details",
}


class ErrorDetail(BaseModel):
    code: str = Field(description="stable and machine-readable, e.g. `not_found`, `validation_error`")
    message: str = Field(description="for people: what happened, to what, and what to do")
    details: dict[str, Any] | None = Field(
        default=None,
        description="more about the error, e.g. `field` and `reason`; a validation error lists every "
        "failing field in `errors`",
    )


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses an operation returns, all with the ``ErrorResponse`` shape."""
    return {status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]} for status in statuses}


class RequestError(HTTPException):
    """A ``HightideError`` raised while FastAPI reads a request body (the byte limit, a body that is not
    JSON or nests too deeply). FastAPI passes an ``HTTPException`` raised there on as it is, and turns
    any other exception into a bare 400."""

    def __init__(self, error: HightideError) -> None:
        super().__init__(HTTP_STATUS.get(error.code, 400), error.message)
        self.error = error


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}


def error_response(exc: HightideError, headers: dict[str, str] | None = None) -> JSONResponse:
    if exc.code == "authentication_error":
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return JSONResponse(
        error_body(exc.code, exc.message, exc.details), status_code=HTTP_STATUS.get(exc.code, 500), headers=headers
    )


def _http_message(request: Request, exc: HTTPException) -> str:
    if exc.status_code == 404:
        return f"no API route at {request.url.path}; see /api/docs for the routes"
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return f"{request.method} is not allowed on {request.url.path}" + (f"; use {allowed}" if allowed else "")
    return str(exc.detail)


def install(app: FastAPI) -> None:
    """Register the handlers that give every error its one shape; see also ``CatchAll``."""

    @app.exception_handler(HightideError)
    async def _hightide(request: Request, exc: HightideError) -> JSONResponse:
        if exc.code == "server_error":  # its text is for the log (a driver's message names hosts, keys)
            return internal_error(exc, request.method, request.url.path)
        return error_response(exc)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        if isinstance(exc, RequestError):
            return error_response(exc.error)
        code = _CODE_OF_STATUS.get(exc.status_code, "bad_request" if exc.status_code < 500 else "server_error")
        return JSONResponse(
            error_body(code, _http_message(request, exc)), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(UnicodeError)
    async def _unicode(_request: Request, exc: UnicodeError) -> JSONResponse:
        reason = "the request contains text that is not valid Unicode (a lone surrogate)"
        return JSONResponse(error_body("validation_error", reason, {"reason": str(exc)}), status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_field_error(e) for e in exc.errors()] or [{"field": "body", "reason": "invalid request"}]
        first = exc.errors()[0] if exc.errors() else {}
        field, reason = errors[0]["field"], errors[0]["reason"]
        if first.get("type") == "json_invalid":
            message = f"the request body is not valid JSON: {first.get('ctx', {}).get('error', reason)}"
        else:
            more = f" (and {len(errors) - 1} more; see details.errors)" if len(errors) > 1 else ""
            message = f"{field}: {reason}{more}"
        details = {"field": field, "reason": reason, "errors": errors}
        return JSONResponse(error_body("validation_error", message, details), status_code=422)


def _field_error(error: Any) -> dict[str, str]:
    loc = [str(p) for p in error.get("loc", ())]
    if loc and loc[0] in ("body", "query", "path", "header"):
        where, loc = loc[0], loc[1:]
        field = ".".join(loc) or where
    else:
        field = ".".join(loc) or "body"
    return {"field": field, "reason": str(error.get("msg", "invalid")), "type": str(error.get("type", ""))}


class CatchAll:
    """Answer any exception no handler took with a 500 in the one error shape, and log its traceback
    with a reference that the response carries (so a user's report can be found in the log). Pure
    ASGI, outside every other middleware of the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except RequestError as exc:  # the body limit, met by a read outside FastAPI's handlers
            if not started:
                await error_response(exc.error, {"Connection": "close"})(scope, receive, send)
        except Exception as exc:
            response = internal_error(exc, scope["method"], scope["path"])
            if started:  # nothing more can be said to this client; the connection is closed
                return
            await response(scope, receive, send)


def internal_error(exc: BaseException, method: str, path: str) -> JSONResponse:
    """Log ``exc`` with its traceback under a new reference, and the 500 that tells the client only
    that reference: whatever the exception says (a driver's text: constraint names, key values, the
    database host and user) stays in the server log."""
    ref = secrets.token_hex(4)
    log.error("unexpected error [ref %s] while handling %s %s", ref, method, path, exc_info=exc)
    message = f"internal server error (ref {ref}); the server log has the details"
    return JSONResponse(error_body("server_error", message, {"ref": ref}), status_code=500)
