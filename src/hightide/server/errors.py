"""The one map from error codes to HTTP statuses, and the JSON shape of every error response."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from hightide.errors import HightideError

log = logging.getLogger("hightide.server")

HTTP_STATUS = {
    "validation_error": 422,
    "payload_too_large": 413,
    "authentication_error": 401,
    "not_found": 404,
    "conflict": 409,
    "already_exists": 409,
    "non_determinism": 409,
    "config_error": 400,
    "server_error": 500,
}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}


def install(app: FastAPI) -> None:
    @app.exception_handler(HightideError)
    async def _hightide(_request: Request, exc: HightideError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.code == "authentication_error" else None
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details), status_code=HTTP_STATUS.get(exc.code, 500), headers=headers
        )

    @app.exception_handler(UnicodeError)
    async def _unicode(_request: Request, exc: UnicodeError) -> JSONResponse:
        reason = "the request contains text that is not valid Unicode (a lone surrogate)"
        return JSONResponse(error_body("validation_error", reason, {"reason": str(exc)}), status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error while handling a request")
        message = f"internal error ({type(exc).__name__}); the server log has the details"
        return JSONResponse(error_body("server_error", message), status_code=500)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        field = ".".join(loc) or "body"
        reason = first.get("msg", "invalid request")
        if first.get("type") == "json_invalid":
            message = f"the request body is not valid JSON: {first.get('ctx', {}).get('error', reason)}"
        else:
            message = f"{field}: {reason}"
        return JSONResponse(
            error_body("validation_error", message, {"field": field, "reason": reason}), status_code=422
        )
