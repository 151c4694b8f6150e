"""The SDK turns any error response into a HightideError with the server's code and message."""

from __future__ import annotations

import httpx
import pytest

from hightide.errors import (
    TRANSIENT_ERRORS,
    AuthenticationError,
    HightideError,
    NotFoundError,
    ServerError,
    ValidationError,
)
from hightide.sdk.http import _error_from

REQUEST = httpx.Request("POST", "http://127.0.0.1:3030/api/v1/tasks/t/trigger")


def _response(status: int, **kwargs: object) -> httpx.Response:
    return httpx.Response(status, request=REQUEST, **kwargs)


def test_the_error_shape_gives_the_class_code_message_and_details() -> None:
    body = {"error": {"code": "not_found", "message": "run 'r' not found", "details": {"run": "r"}}}
    exc = _error_from(_response(404, json=body))
    assert isinstance(exc, NotFoundError)
    assert (exc.code, exc.message, exc.details) == ("not_found", "run 'r' not found", {"run": "r"})


def test_a_code_without_a_class_is_kept_on_the_class_of_its_status() -> None:
    exc = _error_from(_response(405, json={"error": {"code": "method_not_allowed", "message": "use GET"}}))
    assert type(exc) is HightideError and exc.code == "method_not_allowed" and exc.message == "use GET"
    exc = _error_from(_response(400, json={"error": {"code": "bad_request", "message": "cannot read it"}}))
    assert isinstance(exc, ValidationError) and exc.code == "bad_request"


@pytest.mark.parametrize(
    ("status", "kwargs", "text"),
    [
        (401, {"json": {"detail": "Not authenticated"}}, "Not authenticated"),
        (422, {"json": {"detail": [{"loc": ["body"], "msg": "bad"}]}}, "bad"),
        (404, {"text": "<html>no such host</html>"}, "no such host"),
        (408, {"text": "Request Timeout"}, "Request Timeout"),
        (429, {"json": {"message": "slow down"}}, "slow down"),
        (502, {"text": "<html>Bad Gateway</html>"}, "Bad Gateway"),
        (503, {"text": ""}, ""),
        (504, {"json": {"error": "upstream timed out"}}, "upstream timed out"),
    ],
)
def test_a_body_that_is_not_hightides_is_a_server_error_to_try_again(
    status: int, kwargs: dict[str, object], text: str
) -> None:
    """A proxy or load balancer answered for the server: the request may succeed when tried again."""
    exc = _error_from(_response(status, **kwargs))
    assert type(exc) is ServerError and isinstance(exc, TRANSIENT_ERRORS)
    assert f"HTTP {status} from POST" in exc.message and text in exc.message


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_a_status_that_means_not_now_is_a_server_error_whatever_its_code(status: int) -> None:
    exc = _error_from(_response(status, json={"error": {"code": "busy", "message": "try later"}}))
    assert isinstance(exc, TRANSIENT_ERRORS) and exc.code == "busy" and exc.message == "try later"


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (401, "authentication_error", AuthenticationError),
        (404, "not_found", NotFoundError),
        (422, "validation_error", ValidationError),
        (405, "method_not_allowed", HightideError),
    ],
)
def test_an_explicit_hightide_refusal_is_not_to_try_again(status: int, code: str, cls: type[HightideError]) -> None:
    exc = _error_from(_response(status, json={"error": {"code": code, "message": "no"}}))
    assert type(exc) is cls and not isinstance(exc, TRANSIENT_ERRORS)
