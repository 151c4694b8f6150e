"""Database errors through a real server, on both backends: the client gets a reference and words
it can act on, never the driver's text (constraint names, key values, the host and user); the
server log has the details under that reference."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.integration.conftest import CLI, Stack, _start, _stop, fresh_database
from tests.support import free_port, wait_for_http

SECRET = "uq_secret_constraint_host_db7_user_admin"

_SQLITE_TRIGGERS = f"""
CREATE TRIGGER fail_conflict BEFORE INSERT ON waitpoints WHEN NEW.idempotency_key = 'conflict'
BEGIN SELECT RAISE(ABORT, 'UNIQUE constraint failed: {SECRET}'); END;
CREATE TRIGGER fail_broken BEFORE INSERT ON waitpoints WHEN NEW.idempotency_key = 'broken'
BEGIN SELECT json_extract('{SECRET}', '$'); END;
"""

_POSTGRES_TRIGGERS = f"""
CREATE FUNCTION fail_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.idempotency_key = 'conflict' THEN
    RAISE EXCEPTION 'duplicate key value violates unique constraint "{SECRET}"' USING ERRCODE = 'unique_violation';
  ELSIF NEW.idempotency_key = 'broken' THEN
    RAISE EXCEPTION 'connection to {SECRET} failed' USING ERRCODE = 'internal_error';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER fail_insert BEFORE INSERT ON waitpoints FOR EACH ROW EXECUTE FUNCTION fail_insert();
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def failing(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A server whose database refuses tokens of idempotency key ``conflict`` (an integrity error
    naming ``SECRET``) and ``broken`` (any other error: PostgreSQL's names ``SECRET``, SQLite's says
    "malformed JSON")."""
    with fresh_database(request.param, tmp_path_factory) as url:
        work = tmp_path_factory.mktemp("errors")
        log = work / "log.txt"
        port = free_port()
        server = _start([*CLI, "server", "--database-url", url, "--port", str(port)], log, work)
        try:
            wait_for_http(f"http://127.0.0.1:{port}/healthz")
            stack = Stack(f"http://127.0.0.1:{port}", "", url, log)
            stack.key = stack.new_key()
            if request.param == "sqlite":
                with sqlite3.connect(url) as conn:
                    conn.executescript(_SQLITE_TRIGGERS)
            else:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(_POSTGRES_TRIGGERS)
            yield stack
        finally:
            _stop(server)


def _create_token(http: httpx.Client, key: str) -> httpx.Response:
    return http.post("/api/v1/waitpoints/tokens", json={"idempotency_key": key})


def test_a_database_error_answers_a_reference_and_logs_the_details(failing: Stack) -> None:
    with failing.http() as http:
        response = _create_token(http, "broken")
        assert response.status_code == 500, response.text
        error = response.json()["error"]
        assert SECRET not in response.text and "malformed" not in response.text
        ref = re.fullmatch(
            r"internal server error \(ref ([0-9a-f]{8})\); the server log has the details", error["message"]
        )
        assert ref is not None, error
        assert error["details"] == {"ref": ref.group(1)}
        assert _create_token(http, "fine").status_code == 200  # the server goes on
    log = Path(failing.log).read_text()
    logged = log[log.index(f"[ref {ref.group(1)}]") :]
    assert "POST /api/v1/waitpoints/tokens" in logged.splitlines()[0]
    assert SECRET in logged or "malformed JSON" in logged  # the traceback, with the driver's text


def test_a_conflict_says_what_conflicted_without_the_drivers_text(failing: Stack) -> None:
    with failing.http() as http:
        response = _create_token(http, "conflict")
    assert response.status_code == 409, response.text
    assert SECRET not in response.text
    assert response.json()["error"] == {
        "code": "already_exists",
        "message": "the request conflicts with a record written at the same time (the same id or key); retry it",
    }
    assert SECRET in Path(failing.log).read_text()
