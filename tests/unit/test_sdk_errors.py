"""The SDK turns any error response into a HightideError with the server's code and message."""

from __future__ import annotations

import httpx
import pytest

from hightide.errors import AuthenticationError, HightideError, NotFoundError, ServerError, ValidationError
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
    ("status", "kwargs", "cls", "text"),
    [
        (401, {"json": {"detail": "Not authenticated"}}, AuthenticationError, "Not authenticated"),
        (422, {"json": {"detail": [{"loc": ["body"], "msg": "bad"}]}}, ValidationError, "bad"),
        (502, {"text": "<html>Bad Gateway</html>"}, ServerError, "Bad Gateway"),
    ],
)
def test_a_body_of_another_shape_still_gives_a_typed_error(
    status: int, kwargs: dict[str, object], cls: type[HightideError], text: str
) -> None:
    exc = _error_from(_response(status, **kwargs))
    assert type(exc) is cls
    assert f"HTTP {status} from POST" in exc.message and text in exc.message
