"""The dashboard's Environment page over HTTP, against a real ``hightide server`` (SQLite and
PostgreSQL): API keys (listed by their first characters, created and shown once, revoked at once),
the members of the project (added with a one-time login link, removed), and who may do what."""

from __future__ import annotations

import html
import re
import time
import uuid
from pathlib import Path

import httpx
import pytest

from hightide.store import open_store
from tests.integration.conftest import CLI, Stack, _start, _stop
from tests.integration.test_dashboard import CSRF, LINK, browser, signed_in, users
from tests.support import assert_eventually, free_port, wait_for_http

__all__ = ["signed_in"]  # the fixture, imported for these tests

PAGE = "/projects/default/env/dev/environment"
SECRET = re.compile(r'<code class="secret"[^>]*>([^<]+)</code>')


def csrf_on(client: httpx.Client, path: str = PAGE) -> str:
    found = CSRF.search(client.get(path).text)
    assert found, "no CSRF token on the page"
    return found.group(1)


def create_key(client: httpx.Client) -> tuple[httpx.Response, str]:
    answer = client.post(f"{PAGE}/keys", data={"csrf_token": csrf_on(client)})
    assert answer.status_code == 200, answer.text
    found = SECRET.search(answer.text)
    assert found, answer.text
    return answer, found.group(1)


def key_id_of(page: str, secret: str) -> str:
    """The id of the key whose first and last characters are the secret's, from its Revoke link."""
    shown = f"{secret[: len('ht_dev_') + 4]}…{secret[-4:]}"
    found = re.search(rf'href="{PAGE}/keys/(key_[0-9a-z]+)/revoke" aria-label="Revoke {re.escape(shown)}"', page)
    assert found, page
    return found.group(1)


def test_the_page_lists_the_keys_by_their_first_and_last_characters_only(stack: Stack, signed_in: httpx.Client) -> None:
    page = signed_in.get(PAGE)
    assert page.status_code == 200
    assert "API keys" in page.text and "Environment variables" in page.text and "Members of default" in page.text
    first, last = stack.key[: len("ht_dev_") + 4], stack.key[-4:]
    assert f"{first}…{last}</td>" in page.text  # the stack's own key
    assert stack.key not in page.text and stack.key[len(first) : -4] not in page.text
    assert "Create key" in page.text and "hightide env set NAME=VALUE" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert signed_in.get("/projects/default/env/prod/environment").status_code == 200
    assert signed_in.get("/projects/default/env/nowhere/environment").status_code == 404


def test_a_new_key_is_shown_once_works_and_is_refused_at_once_when_revoked(
    stack: Stack, signed_in: httpx.Client
) -> None:
    answer, secret = create_key(signed_in)
    assert secret.startswith("ht_dev_") and len(secret) > 30
    assert "It will not be shown again" in answer.text
    assert "location" not in answer.headers and secret not in str(answer.url)
    assert answer.headers["cache-control"] == "no-store"

    page = signed_in.get(PAGE).text
    assert secret not in page, "the secret is shown once, on the answer to the POST only"
    key_id = key_id_of(page, secret)

    with stack.http(secret) as api:
        assert api.get("/api/v1/runs").status_code == 200
        confirm = signed_in.get(f"{PAGE}/keys/{key_id}/revoke")
        assert confirm.status_code == 200 and "Revoke this key?" in confirm.text
        assert api.get("/api/v1/runs").status_code == 200, "the confirmation page revokes nothing"

        refused = signed_in.post(f"{PAGE}/keys/{key_id}/revoke")
        assert refused.status_code == 403, "no CSRF token, no revocation"
        assert api.get("/api/v1/runs").status_code == 200

        done = signed_in.post(f"{PAGE}/keys/{key_id}/revoke", data={"csrf_token": csrf_on(signed_in)})
        assert done.status_code == 303 and done.headers["location"] == f"{PAGE}?notice=key-revoked#keys"
        gone = api.get("/api/v1/runs")  # at once: the server that revoked it forgot its cached key
        assert gone.status_code == 401 and gone.json()["error"]["code"] == "authentication_error"

    after = signed_in.get(done.headers["location"].split("#")[0]).text
    assert "Key revoked" in after
    assert f"{PAGE}/keys/{key_id}/revoke" not in after  # no Revoke button on a revoked key
    assert 'class="revoked"' in after and "Revoked" in after
    again = signed_in.post(f"{PAGE}/keys/{key_id}/revoke", data={"csrf_token": csrf_on(signed_in)})
    assert again.status_code == 404 and "no live key" in html.unescape(again.text)
    with stack.http() as api:
        assert api.get("/api/v1/runs").status_code == 200, "the environment's other keys still work"


def test_a_key_of_another_environment_is_not_revoked_here(stack: Stack, signed_in: httpx.Client) -> None:
    prod = stack.new_key("prod")
    prod_page = signed_in.get("/projects/default/env/prod/environment").text
    key_id = re.search(r"/projects/default/env/prod/environment/keys/(key_[0-9a-z]+)/revoke", prod_page)
    assert key_id
    answer = signed_in.post(f"{PAGE}/keys/{key_id.group(1)}/revoke", data={"csrf_token": csrf_on(signed_in)})
    assert answer.status_code == 404
    with stack.http(prod) as api:
        assert api.get("/api/v1/runs").status_code == 200


def test_creating_a_key_needs_the_csrf_token(signed_in: httpx.Client) -> None:
    before = signed_in.get(PAGE).text.count("/revoke")
    for bad in ({}, {"csrf_token": "0" * 64}):
        refused = signed_in.post(f"{PAGE}/keys", data=bad)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    assert signed_in.get(PAGE).text.count("/revoke") == before


def test_an_admin_adds_a_member_who_signs_in_by_the_link_shown_once_and_removes_them(
    stack: Stack, signed_in: httpx.Client
) -> None:
    email = f"Member-{uuid.uuid4().hex[:6]}@Example.com"
    added = signed_in.post(f"{PAGE}/members", data={"csrf_token": csrf_on(signed_in), "email": f" {email} "})
    assert added.status_code == 200, added.text
    assert "It will not be shown again" in added.text and email.lower() in added.text
    link = html.unescape(SECRET.search(added.text).group(1))  # type: ignore[union-attr]
    assert LINK.match(link) and link.startswith(stack.url)
    assert link not in signed_in.get(PAGE).text

    page = signed_in.get(PAGE).text
    assert email.lower() in page
    user_id = re.search(rf'/members/(usr_[0-9a-z]+)/remove" aria-label="Remove {re.escape(email.lower())}"', page)
    assert user_id, page

    with browser(stack) as member:
        assert member.get(link).status_code == 303
        seen = member.get(PAGE)
        assert seen.status_code == 200
        assert "Only admins create and revoke keys" in seen.text and "Create key" not in seen.text
        assert "/revoke" not in seen.text and "/remove" not in seen.text and "Add member" not in seen.text

        # A member may look, not act: every action answers 403, with the CSRF token and all.
        token = csrf_on(member)
        for path in (f"{PAGE}/keys", f"{PAGE}/members", f"{PAGE}/members/{user_id.group(1)}/remove"):
            refused = member.post(path, data={"csrf_token": token, "email": "x@example.com"})
            assert refused.status_code == 403, path
            assert "only an admin can" in refused.text and "<html" in refused.text
        assert member.get(f"{PAGE}/keys/key_whatever/revoke").status_code == 403
        assert "x@example.com" not in signed_in.get(PAGE).text

        # The admin removes them: the member's next request no longer sees the project.
        confirm = signed_in.get(f"{PAGE}/members/{user_id.group(1)}/remove")
        assert confirm.status_code == 200 and "Remove this member?" in confirm.text
        assert signed_in.post(f"{PAGE}/members/{user_id.group(1)}/remove").status_code == 403  # no CSRF token
        assert member.get(PAGE).status_code == 200
        done = signed_in.post(f"{PAGE}/members/{user_id.group(1)}/remove", data={"csrf_token": csrf_on(signed_in)})
        assert done.status_code == 303 and done.headers["location"] == f"{PAGE}?notice=member-removed#members"
        assert member.get(PAGE).status_code == 404
        assert member.get("/projects/default/env/dev/runs").status_code == 404
    assert email.lower() not in signed_in.get(PAGE).text

    # Adding them again: the user exists, so there is no new link, only a notice.
    again = signed_in.post(f"{PAGE}/members", data={"csrf_token": csrf_on(signed_in), "email": email})
    assert again.status_code == 303 and again.headers["location"] == f"{PAGE}?notice=member-added#members"
    assert email.lower() in signed_in.get(PAGE).text


def test_adding_a_member_explains_what_is_wrong_on_the_page(stack: Stack, signed_in: httpx.Client) -> None:
    bad = signed_in.post(f"{PAGE}/members", data={"csrf_token": csrf_on(signed_in), "email": "not an address"})
    assert bad.status_code == 422 and "not an email address" in html.unescape(bad.text)
    assert 'value="not an address"' in bad.text and "API keys" in bad.text  # the page, with what was typed
    admin = signed_in.post(f"{PAGE}/members", data={"csrf_token": csrf_on(signed_in), "email": "admin@localhost"})
    assert admin.status_code == 409 and "admins see every project" in admin.text
    email = f"twice-{uuid.uuid4().hex[:6]}@example.com"
    assert users(stack, "create", email).returncode == 0  # a member of default already
    twice = signed_in.post(f"{PAGE}/members", data={"csrf_token": csrf_on(signed_in), "email": email})
    assert twice.status_code == 409 and "is a member of project default already" in twice.text


def test_an_admin_is_listed_and_cannot_be_removed(stack: Stack, signed_in: httpx.Client) -> None:
    page = signed_in.get(PAGE).text
    assert "admin@localhost" in page and "(you)" in page and "sees every project" in page
    assert 'aria-label="Remove admin@localhost"' not in page
    store = open_store(stack.database_url)
    try:
        admin = store.users.get_user_by_email("admin@localhost")
    finally:
        store.close()
    assert admin is not None
    confirm = signed_in.get(f"{PAGE}/members/{admin.id}/remove")
    assert confirm.status_code == 403 and "admin and sees every project" in confirm.text
    refused = signed_in.post(f"{PAGE}/members/{admin.id}/remove", data={"csrf_token": csrf_on(signed_in)})
    assert refused.status_code == 403 and "admin and sees every project" in refused.text
    assert signed_in.get(PAGE).status_code == 200  # still an admin, still signed in


def test_a_key_revoked_on_the_dashboard_is_refused_by_another_server_at_once(
    stack: Stack, signed_in: httpx.Client, tmp_path: Path
) -> None:
    if not stack.database_url.startswith("postgresql"):
        pytest.skip("servers on one SQLite file share no notifications: there the key cache's 10 s bound holds")
    port = free_port()
    other = _start(
        [*CLI, "server", "--database-url", stack.database_url, "--port", str(port)], tmp_path / "b.log", tmp_path
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        _, secret = create_key(signed_in)
        key_id = key_id_of(signed_in.get(PAGE).text, secret)
        headers = {"Authorization": f"Bearer {secret}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10) as there:
            assert there.get("/api/v1/runs").status_code == 200  # the other server has it cached now (10 s)
            done = signed_in.post(f"{PAGE}/keys/{key_id}/revoke", data={"csrf_token": csrf_on(signed_in)})
            assert done.status_code == 303
            began = time.monotonic()
            assert_eventually(
                lambda: there.get("/api/v1/runs").status_code == 401, timeout=5, what="the other server to refuse it"
            )
            assert time.monotonic() - began < 5, "heard the revocation, not the cache's expiry"
    finally:
        _stop(other)


def test_a_server_given_its_public_url_makes_member_links_with_it(
    stack: Stack, signed_in: httpx.Client, tmp_path: Path
) -> None:
    public = "https://hightide.example.com"
    port = free_port()
    other = _start(
        [*CLI, "server", "--database-url", stack.database_url, "--port", str(port), "--public-url", public],
        tmp_path / "public.log",
        tmp_path,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        # The same database, so the same session: behind a proxy this server only knows its inner address.
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", cookies=signed_in.cookies, timeout=10) as there:
            email = f"behind-{uuid.uuid4().hex[:6]}@example.com"
            added = there.post(f"{PAGE}/members", data={"csrf_token": csrf_on(there), "email": email})
            assert added.status_code == 200, added.text
            link = html.unescape(SECRET.search(added.text).group(1))  # type: ignore[union-attr]
            assert link.startswith(f"{public}/login?token=htl_"), link
    finally:
        _stop(other)
