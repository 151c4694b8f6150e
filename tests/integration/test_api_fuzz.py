"""The API against its own OpenAPI document: generated requests, valid and invalid, to every operation,
with a valid key, no key and a garbage key, on SQLite and PostgreSQL. No response may be a 5xx, and
none may contradict the document (SPEC §4: no input a client can send produces a 5xx).

Bounded and repeatable: a fixed number of examples per operation, derandomized, no shrinking.
``HIGHTIDE_TEST_FUZZ_SCALE=20`` multiplies the examples (and the minutes) for a deeper search.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.integration.conftest import CLI, _start, _stop, fresh_database
from tests.support import free_port, wait_for_http

SCALE = int(os.environ.get("HIGHTIDE_TEST_FUZZ_SCALE", "1"))
AUTH = {"valid": None, "none": {}, "garbage": {"Authorization": "Bearer ht_dev_not-a-real-key"}}
MANIFEST = {"tasks": [{"id": "echo"}, {"id": "typed", "payload_schema": {"type": "object"}}]}


@dataclass
class Target:
    url: str
    key: str
    failures: list[str] = field(default_factory=list)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """A real server on a loopback port over a database of its own (the fuzzer's runs stay out of
    the other tests' environment), with a registered version so that triggers reach the store."""
    with fresh_database(request.param, tmp_path_factory) as database_url:
        work = tmp_path_factory.mktemp("fuzz")
        port = free_port()
        server = _start([*CLI, "server", "--database-url", database_url, "--port", str(port)], work / "log.txt", work)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_http(f"{url}/healthz")
            key = _new_key(database_url)
            registered = httpx.post(
                f"{url}/api/v1/worker/register",
                json={"manifest": MANIFEST},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert registered.status_code == 200, registered.text
            yield Target(url, key)
        finally:
            _stop(server)


def _new_key(database_url: str) -> str:
    import subprocess

    out = subprocess.run(
        [*CLI, "keys", "create", "--env", "dev", "--database-url", database_url],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def _bounded(case: Case) -> None:
    """Long-polls (claim, heartbeat) may wait up to a minute: the fuzzer does not wait."""
    if isinstance(case.body, dict) and isinstance(case.body.get("wait"), int | float):
        case.body["wait"] = min(case.body["wait"], 0.01)


def _check(case: Case, response: Any) -> str | None:
    """The failure of one response, or None."""
    try:
        # Conformance covers every status the document declares for the operation; statuses it
        # does not declare yet (401, 404, 409 until error responses are documented per operation)
        # are only checked for being no 5xx, and are covered by conformance once they are declared.
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
    except (AssertionError, FailureGroup) as exc:  # a check failed
        body = response.text[:300]
        return f"{case.method} {case.formatted_path} -> {response.status_code} {body} ({type(exc).__name__})"
    return None


def _plan(operation: Any, auth: str) -> list[tuple[GenerationMode, int]]:
    """How many requests of each kind: valid ones, and (with a valid key, where there is a body or a
    query to break) invalid ones. Reports take the fewest: their bodies are slow to generate."""
    if auth != "valid":
        return [(GenerationMode.POSITIVE, 2)]
    costly = operation.path.endswith("/worker/complete")
    plan = [(GenerationMode.POSITIVE, 3 if costly else 6)]
    if operation.body or operation.query:
        plan.append((GenerationMode.NEGATIVE, 2 if costly else 5))
    return plan


def _fuzz(target: Target, operation: Any, mode: GenerationMode, examples: int, auth: str) -> None:
    headers = AUTH[auth] if AUTH[auth] is not None else {"Authorization": f"Bearer {target.key}"}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples * SCALE,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Case) -> None:
        _bounded(case)
        try:
            response = case.call(base_url=target.url, headers=headers, timeout=30)
        except Exception as exc:  # the server closed the connection or hung: that is a failure too
            target.failures.append(f"{case.method} {case.formatted_path}: {type(exc).__name__}: {exc}")
            return
        failure = _check(case, response)
        if failure is not None:
            target.failures.append(failure)

    try:
        run()
    except Unsatisfiable:  # no invalid value of this operation can be sent over HTTP
        assert mode is GenerationMode.NEGATIVE


@pytest.mark.timeout(300 * SCALE)
@pytest.mark.parametrize("auth", ["valid", "none", "garbage"])
def test_no_request_gets_a_server_error(target: Target, auth: str) -> None:
    schema = schemathesis.openapi.from_url(f"{target.url}/api/openapi.json")
    target.failures.clear()
    # A realtime stream stays open until its run finishes (a tag's, for ever): the fuzzer would read
    # it without end. Its refusals (no key, a bad or foreign token, bad queries) are tested in
    # test_realtime.py and test_public_tokens.py.
    operations = [op for result in schema.get_all_operations() if not (op := result.ok()).path.startswith("/realtime/")]
    assert len(operations) >= 15
    for operation in operations:
        for mode, examples in _plan(operation, auth):
            _fuzz(target, operation, mode, examples, auth)
    assert not target.failures, f"{len(target.failures)} failing responses:\n" + "\n".join(
        sorted(set(target.failures))[:40]
    )


def test_the_document_publishes_the_limits(target: Target) -> None:
    document = httpx.get(f"{target.url}/api/openapi.json").json()
    options = document["components"]["schemas"]["TriggerOptions"]["properties"]
    queue = options["queue"]["anyOf"][0]
    assert queue["maxLength"] == 256 and queue["pattern"] == r"^[^\x00]*$"
    assert options["priority"]["anyOf"][0]["maximum"] == 30 * 86400
    ttl = options["ttl"]["anyOf"][0]["anyOf"]
    assert ttl[0]["maximum"] == 10 * 365 * 86400 and ttl[1]["maxLength"] == 64
    held = document["components"]["schemas"]["HeldRun"]["properties"]["attempt"]
    assert held["maximum"] == 2**31 - 1
