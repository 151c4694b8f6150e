"""Every error the API gives has one shape, with the matching status, documented in the OpenAPI
document; request bodies are read only once authenticated, and their JSON nesting is bounded."""

from __future__ import annotations

import re
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema
import pytest

from hightide import Client
from hightide.engine.payloads import MAX_VALUE_DEPTH
from hightide.errors import HightideError, NotFoundError, ValidationError
from hightide.sdk.http import ApiSession
from hightide.server.limits import MAX_JSON_DEPTH
from tests.integration.conftest import Stack
from tests.support import wait_finished

JSON = {"Content-Type": "application/json"}


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"], body
    error = body["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    return error


def _nested(depth: int) -> str:
    """A JSON array nested ``depth`` deep."""
    return "[" * depth + "]" * depth


def test_an_unknown_path_is_a_404_in_the_error_shape(http: httpx.Client) -> None:
    error = _error(http.get("/api/v1/no/such/thing"), 404, "not_found")
    assert "/api/v1/no/such/thing" in error["message"]
    _error(http.post("/nowhere", json={}), 404, "not_found")


def test_a_wrong_method_is_a_405_naming_the_allowed_ones(http: httpx.Client) -> None:
    response = http.delete("/api/v1/runs")
    error = _error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"] and "GET" in error["message"]


def test_malformed_and_non_utf8_bodies_are_422(http: httpx.Client) -> None:
    error = _error(
        http.post("/api/v1/tasks/echo/trigger", content=b'{"payload": ', headers=JSON), 422, "validation_error"
    )
    assert "not valid JSON" in error["message"]
    error = _error(
        http.post("/api/v1/tasks/echo/trigger", content=b"\xff\xfe{}", headers=JSON), 422, "validation_error"
    )
    assert "not valid JSON" in error["message"]


def test_request_validation_lists_every_failing_field(http: httpx.Client) -> None:
    body = {"payload": {}, "options": {"tags": "not-a-list", "max_attempts": "three"}}
    error = _error(http.post("/api/v1/tasks/echo/trigger", json=body), 422, "validation_error")
    assert error["message"].startswith("options.tags:")
    assert {e["field"] for e in error["details"]["errors"]} == {"options.tags", "options.max_attempts"}
    error = _error(http.get("/api/v1/runs", params={"limit": "many"}), 422, "validation_error")
    assert error["details"]["field"] == "limit"


def test_a_body_over_the_limit_by_its_length_is_refused_before_it_is_sent(stack: Stack) -> None:
    """A Content-Length over the cap is answered at once; the client never has to send the body."""
    host, port = urlsplit(stack.url).hostname, urlsplit(stack.url).port
    assert host is not None and port is not None
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/tasks/echo/trigger HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {stack.key}\r\nContent-Length: {10**12}\r\n\r\n".encode()
        )
        reply = b""
        while b"}}" not in reply:
            data = sock.recv(65536)
            if not data:
                break
            reply += data
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), reply
    assert b"connection: close" in head.lower()
    assert b'"code":"payload_too_large"' in body


def test_json_nested_too_deeply_is_a_clean_422(http: httpx.Client) -> None:
    for depth in (MAX_JSON_DEPTH + 1, 200_000):
        body = '{"payload": ' + _nested(depth) + "}"
        error = _error(http.post("/api/v1/tasks/echo/trigger", content=body, headers=JSON), 422, "validation_error")
        assert f"deeper than {MAX_JSON_DEPTH} levels" in error["message"]


def test_values_nest_to_their_limit_and_no_deeper(stack: Stack, http: httpx.Client) -> None:
    """A payload at the value limit is stored and served back; one level more is a 422 naming it; an
    output over it (echo wraps its payload in one more object) fails the run cleanly."""
    deeper = '{"payload": {"a": ' + _nested(MAX_VALUE_DEPTH) + "}}"
    error = _error(http.post("/api/v1/tasks/echo/trigger", content=deeper, headers=JSON), 422, "validation_error")
    assert error["message"] == f"payload: nests arrays or objects deeper than {MAX_VALUE_DEPTH} levels"
    at_limit = '{"payload": {"a": ' + _nested(MAX_VALUE_DEPTH - 1) + "}}"
    response = http.post("/api/v1/tasks/echo/trigger", content=at_limit, headers=JSON)
    assert response.status_code == 200, response.text
    with stack.client() as client:
        run = wait_finished(client, response.json()["id"])
    assert run.status == "SYSTEM_FAILURE", run
    assert run.error is not None and f"deeper than {MAX_VALUE_DEPTH} levels" in run.error["message"]
    served = http.get(f"/api/v1/runs/{run.id}")
    assert served.status_code == 200, served.text
    assert served.json()["payload"] == httpx.Response(200, content=at_limit).json()["payload"]


def test_a_token_callback_checks_its_signature_before_its_body(stack: Stack, client: Client) -> None:
    token = client.waitpoints.create_token(timeout="1h")
    forged = token.url[:-4] + ("0000" if not token.url.endswith("0000") else "1111")
    sent = 0

    def endless() -> Any:  # a body that never ends: only a refusal before reading it can answer
        nonlocal sent
        while True:
            sent += 65536
            yield b"[" * 65536

    with httpx.Client(timeout=30) as anonymous:
        _error(anonymous.post(forged, content=endless(), headers=JSON), 401, "authentication_error")
        assert sent < 64 * 1024 * 1024
        deep = anonymous.post(token.url, content=_nested(200_000), headers=JSON)
        assert "deeper than" in _error(deep, 422, "validation_error")["message"]
        done = anonymous.post(token.url, json={"approved": True})
    assert done.status_code == 200, done.text
    assert client.waitpoints.retrieve_token(token.id).status == "COMPLETED"


def test_the_sdk_raises_the_servers_code_and_message(stack: Stack, client: Client) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.runs.retrieve("run_nope")
    assert caught.value.code == "not_found" and "run_nope" in caught.value.message
    with pytest.raises(ValidationError) as invalid:
        client.trigger("echo", {}, delay="tomorrow-ish")
    assert invalid.value.code == "validation_error" and "delay" in invalid.value.message


async def test_the_sdk_keeps_a_code_it_has_no_class_for(stack: Stack) -> None:
    session = ApiSession(stack.url, stack.key)
    try:
        with pytest.raises(HightideError) as caught:
            await session.request("DELETE", "/api/v1/runs")
    finally:
        await session.aclose()
    assert caught.value.code == "method_not_allowed" and "GET" in caught.value.message


# -- the OpenAPI document ------------------------------------------------------------------------


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), p, op) for p, item in spec["paths"].items() for m, op in item.items()]


def test_every_error_response_is_documented_with_the_error_schema(http: httpx.Client) -> None:
    spec = http.get("/api/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # FastAPI's default 422 shape
    for method, path, op in _operations(spec):
        errors = {int(s): r for s, r in op["responses"].items() if int(s) >= 400}
        assert {401, 422, 500} <= set(errors), (method, path, sorted(errors))
        if "requestBody" in op:
            assert 413 in errors, (method, path)
        for status, response in errors.items():
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path, status)


def _hostile_requests(stack: Stack, method: str, path: str) -> list[httpx.Request]:
    url = stack.url + re.sub(r"\{[^}]+\}", "x", path)
    key = {"Authorization": f"Bearer {stack.key}"}
    return [
        httpx.Request(method, url),  # no key
        httpx.Request(method, url, headers={"Authorization": "Bearer ht_dev_wrong"}),
        httpx.Request(method, url, headers={**key, **JSON}, content=b"{"),
        httpx.Request(method, url, headers={**key, **JSON}, content=b'{"items": 5, "payload": {}, "seq": []}'),
        httpx.Request(method, url, headers={**key, **JSON}, content=_nested(MAX_JSON_DEPTH + 1)),
        httpx.Request(method, url, headers=key, params={"limit": "x", "after": "y", "status": "NOPE"}),
    ]


def test_every_error_an_operation_answers_is_documented_for_it(stack: Stack, http: httpx.Client) -> None:
    """A schema checker's view: hostile requests to every operation get statuses the document lists
    for that operation, with bodies that match its ErrorResponse schema."""
    spec = http.get("/api/openapi.json").json()
    schema = {"$ref": "#/components/schemas/ErrorResponse", "components": spec["components"]}
    checked = 0
    with httpx.Client(timeout=30) as raw:
        for method, path, op in _operations(spec):
            for request in _hostile_requests(stack, method, path):
                response = raw.send(request)
                assert str(response.status_code) in op["responses"], (method, path, response.status_code, response.text)
                if response.status_code >= 400:
                    jsonschema.validate(response.json(), schema)
                    checked += 1
    assert checked >= 5 * len(_operations(spec))
