"""Public access tokens against a real server (SQLite and PostgreSQL): they read what they name,
with CORS, and nothing else; expired, forged and other environments' tokens are refused."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from hightide import AsyncClient, AuthenticationError, NotFoundError, RunStatus
from hightide.errors import PermissionDeniedError
from tests.integration.conftest import Stack


def _public(stack: Stack, token: str) -> AsyncClient:
    return AsyncClient(api_url=stack.url, access_token=token)


async def test_a_triggers_token_reads_its_run_and_nothing_else(stack: Stack) -> None:
    async with AsyncClient(api_url=stack.url, secret_key=stack.key) as client:
        handle = await client.trigger("echo", {"n": 1})
        other = await client.trigger("echo", {"n": 2})
        token = handle.public_access_token
        assert token is not None and token.startswith("ht_pub_")
        assert other.public_access_token != token
        await client.runs.poll(handle.id, timeout=30)
        async with _public(stack, token) as public:
            assert (await public.runs.retrieve(handle.id)).status == RunStatus.COMPLETED
            seen = [run async for run in public.runs.subscribe(handle.id)]
            assert [r.status for r in seen] == [RunStatus.COMPLETED]
            for refused in (
                public.runs.retrieve(other.id),
                public.runs.retrieve("run_does_not_exist"),  # 403 too: it learns nothing of runs it does not name
                public.trigger("echo", {"n": 3}),
                public.runs.cancel(handle.id),
                public.runs.replay(handle.id),
                public.auth.create_public_token(read={"runs": [other.id]}),
                _first(public.runs.list()),
                _first(public.runs.subscribe(other.id)),
                _first(public.runs.subscribe_to_tag("any")),
            ):
                with pytest.raises(PermissionDeniedError) as info:
                    await refused
                assert info.value.code == "permission_denied"


async def _first(items: AsyncIterator[Any]) -> Any:
    async with contextlib.aclosing(items):  # type: ignore[type-var]
        async for item in items:
            return item
    return None


async def test_a_tag_token_reads_the_runs_of_its_tag(stack: Stack) -> None:
    tag = f"pub-{uuid.uuid4().hex[:8]}"
    async with AsyncClient(api_url=stack.url, secret_key=stack.key) as client:
        tagged = await client.trigger("echo", {"n": 1}, tags=[tag])
        untagged = await client.trigger("echo", {"n": 2}, tags=["something-else"])
        token = await client.auth.create_public_token(read={"tags": [tag]}, expires_in="10m")
        await client.runs.poll(tagged.id, timeout=30)
        async with _public(stack, token) as public:
            assert (await public.runs.retrieve(tagged.id)).id == tagged.id
            with pytest.raises(PermissionDeniedError):
                await public.runs.retrieve(untagged.id)
            first = await _first(public.runs.subscribe_to_tag(tag))
            assert first is not None and first.id == tagged.id
            with pytest.raises(PermissionDeniedError):
                await _first(public.runs.subscribe_to_tag("something-else"))


async def test_expired_forged_and_malformed_tokens_are_refused(stack: Stack) -> None:
    async with AsyncClient(api_url=stack.url, secret_key=stack.key) as client:
        handle = await client.trigger("echo", {"n": 1})
        other = await client.trigger("echo", {"n": 2})
        short = await client.auth.create_public_token(read={"runs": [handle.id]}, expires_in=1)
    token = handle.public_access_token
    assert token is not None
    body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body.removeprefix("ht_pub_") + "=="))
    claims["r"] = [other.id]  # the same signature over other claims
    forged = "ht_pub_" + base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=") + "." + signature
    await asyncio.sleep(1.2)
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        for bad, why in (
            (short, "expired"),
            (forged, "signature does not match"),
            (token[:-4] + "AAAA", "signature does not match"),
            ("ht_pub_garbage", "malformed"),
            ("ht_pub_e30.", "malformed"),
        ):
            for path in (f"/api/v1/runs/{other.id}", f"/realtime/v1/runs/{other.id}"):
                response = http.get(path, headers={"Authorization": f"Bearer {bad}"})
                assert response.status_code == 401, (bad, path, response.text)
                assert why in response.json()["error"]["message"]
    async with _public(stack, short) as public:
        with pytest.raises(AuthenticationError):
            await public.runs.retrieve(handle.id)


async def test_a_token_cannot_read_another_environments_runs(stack: Stack) -> None:
    staging = stack.new_key("staging")
    with stack.http(key=staging) as http:  # a staging task (no worker runs it: its run stays QUEUED)
        assert http.post("/api/v1/worker/register", json={"manifest": {"tasks": [{"id": "rt-staging"}]}}).is_success
    async with AsyncClient(api_url=stack.url, secret_key=staging) as client:
        staging_run = await client.trigger("rt-staging", {}, tags=["shared"])
        staging_token = await client.auth.create_public_token(read={"runs": [staging_run.id], "tags": ["shared"]})
    async with AsyncClient(api_url=stack.url, secret_key=stack.key) as client:
        dev_run = await client.trigger("echo", {"n": 1}, tags=["shared"])
        # A dev token naming the staging run's id: the id is not a dev run.
        dev_token = await client.auth.create_public_token(read={"runs": [staging_run.id]})
        await client.runs.poll(dev_run.id, timeout=30)
    async with _public(stack, staging_token) as public:
        assert (await public.runs.retrieve(staging_run.id)).status == RunStatus.QUEUED
        # It names the tag the dev run carries: still not a run of its environment.
        with pytest.raises(PermissionDeniedError):
            await public.runs.retrieve(dev_run.id)
        first = await _first(public.runs.subscribe_to_tag("shared"))
        assert first is not None and first.id == staging_run.id  # the staging runs of the tag only
    async with _public(stack, dev_token) as public:
        for refused in (public.runs.retrieve(staging_run.id), _first(public.runs.subscribe(staging_run.id))):
            with pytest.raises(NotFoundError):
                await refused


def test_public_tokens_work_in_the_url_of_a_stream_and_secret_keys_do_not(stack: Stack) -> None:
    with stack.http() as http:
        created = http.post("/api/v1/tasks/echo/trigger", json={"payload": {}}).json()
        token = created["public_access_token"]
        with httpx.stream("GET", f"{stack.url}/realtime/v1/runs/{created['id']}?access_token={token}") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.headers["access-control-allow-origin"] == "*"
            text = "".join(stream.iter_text())
        assert "event: run" in text and "event: end" in text
        refused = httpx.get(f"{stack.url}/realtime/v1/runs/{created['id']}?access_token={stack.key}")
        assert refused.status_code == 401
        assert "only a public access token" in refused.json()["error"]["message"]
        # Outside the realtime routes a token in the URL is not looked at.
        assert httpx.get(f"{stack.url}/api/v1/runs/{created['id']}?access_token={token}").status_code == 401


def test_making_a_token_checks_what_it_names(stack: Stack) -> None:
    with stack.http() as http:
        for body, field in (
            ({"read": {}}, "read"),
            ({"read": {"runs": ["r"] * 51}}, "read.runs"),
            ({"read": {"runs": ["r"]}, "expires_in": "8d"}, "expires_in"),
            ({"read": {"runs": ["r"]}, "expires_in": 0}, "expires_in"),
            ({"read": {"runs": ["r"]}, "write": {}}, "write"),
        ):
            response = http.post("/api/v1/auth/public-tokens", json=body)
            assert response.status_code == 422, (body, response.text)
            assert response.json()["error"]["details"]["field"].startswith(field), response.text
        made = http.post("/api/v1/auth/public-tokens", json={"read": {"runs": ["r", "r"], "tags": ["t"]}}).json()
        assert made["read"] == {"runs": ["r"], "tags": ["t"]}
        assert made["expires_at"].endswith("Z")


def test_cors_only_on_the_public_routes(stack: Stack) -> None:
    origin = {"Origin": "https://app.example.com"}
    preflight = {**origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        for path in ("/realtime/v1/runs/run_x", "/realtime/v1/runs?tag=a", "/api/v1/runs/run_x"):
            answer = http.options(path, headers=preflight)
            assert answer.status_code == 204, path
            assert answer.headers["access-control-allow-origin"] == "*"
            assert "GET" in answer.headers["access-control-allow-methods"]
            assert "authorization" in answer.headers["access-control-allow-headers"]
            assert "last-event-id" in answer.headers["access-control-allow-headers"]
        # Answers, errors included, carry the header, so that a page can read them.
        unauthenticated = http.get("/api/v1/runs/run_x", headers=origin)
        assert unauthenticated.status_code == 401
        assert unauthenticated.headers["access-control-allow-origin"] == "*"
        # Everything else is as it was: no CORS, so a page on another origin cannot use it.
        for method, path in (
            ("POST", "/api/v1/tasks/echo/trigger"),
            ("GET", "/api/v1/runs"),
            ("POST", "/api/v1/runs/x/cancel"),
        ):
            answer = http.options(path, headers={**preflight, "Access-Control-Request-Method": method})
            assert "access-control-allow-origin" not in answer.headers, path
            assert answer.status_code == 405
        assert "access-control-allow-origin" not in http.get("/api/v1/runs", headers=origin).headers
