"""The dashboard's sign-in, sessions, CSRF and pages, against a real ``hightide server`` (SQLite and
PostgreSQL), with login links printed by the real ``hightide users`` command."""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from hightide.engine.environments import hash_key
from hightide.sdk.http import tls_context
from hightide.store import open_store
from tests.integration.conftest import CLI, Stack
from tests.support import login_link, wait_finished

LINK = re.compile(r"^(http://\S+/login\?token=(htl_\S+))$", re.MULTILINE)
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
RUNS = "/projects/default/env/dev/runs"
SECTIONS = ("tasks", "schedules", "queues", "tokens", "deployments", "environment")


def users(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "users", *args, "--database-url", stack.database_url, "--public-url", stack.url],
        capture_output=True,
        text=True,
        timeout=60,
    )


def new_link(stack: Stack, email: str = "admin@localhost") -> str:
    """A login link for ``email``, as ``hightide users login-link`` prints it."""
    return login_link(stack.database_url, stack.url, email)


def browser(stack: Stack) -> httpx.Client:
    return httpx.Client(base_url=stack.url, follow_redirects=False, timeout=30, verify=tls_context())


@pytest.fixture
def signed_in(stack: Stack) -> Iterator[httpx.Client]:
    """A browser-like client signed in as the admin."""
    with browser(stack) as client:
        assert client.get(new_link(stack)).status_code == 303
        yield client


def csrf_of(client: httpx.Client) -> str:
    found = CSRF.search(client.get(RUNS).text)
    assert found, "no CSRF token on the page"
    return found.group(1)


def test_the_first_start_printed_the_admins_login_link(stack: Stack) -> None:
    log = stack.log.read_text()
    assert log.count("created the dashboard admin admin@localhost") == 1
    assert re.search(rf"Dashboard: {re.escape(stack.url)}/login\?token=htl_\S+", log), log[-2000:]


def test_without_a_session_pages_lead_to_the_login_page_and_fragments_are_refused(stack: Stack) -> None:
    with browser(stack) as client:
        home = client.get("/")
        assert home.status_code == 303 and home.headers["location"] == "/login"
        page = client.get(f"{RUNS}?status=FAILED")
        assert page.status_code == 303
        assert page.headers["location"] == "/login?next=%2Fprojects%2Fdefault%2Fenv%2Fdev%2Fruns%3Fstatus%3DFAILED"
        fragment = client.get(RUNS, headers={"HX-Request": "true"})
        assert fragment.status_code == 401 and fragment.headers["hx-redirect"] == "/login"
        assert fragment.json()["error"]["code"] == "authentication_error"
        for section in SECTIONS:
            assert client.get(f"/projects/default/env/dev/{section}").status_code == 303
        login = client.get("/login")
        assert login.status_code == 200 and "Sign in to the dashboard" in login.text
        assert 'name="csrf_token"' not in login.text and "Runs" not in login.text
        assert client.post("/logout").status_code == 401  # no session: nothing to sign out, and no data


@pytest.mark.parametrize("token", ["htl_wrong", "garbage", "hts_not_a_link_token", "x" * 500])
def test_a_wrong_link_shows_the_login_page_and_no_data(stack: Stack, token: str) -> None:
    with browser(stack) as client:
        answer = client.get("/login", params={"token": token})
        assert answer.status_code == 401
        assert "This sign-in link does not work" in answer.text
        assert "set-cookie" not in answer.headers
        assert client.get(RUNS).status_code == 303


def test_a_good_link_signs_in_once_with_a_strict_cookie(stack: Stack) -> None:
    link = new_link(stack)
    with browser(stack) as client:
        answer = client.get(link)
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith("hightide_session=hts_")
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # served over http; over https it is Secure
        assert answer.headers["referrer-policy"] == "no-referrer"

        home = client.get("/")
        assert home.status_code == 303 and home.headers["location"] == RUNS
        page = client.get(RUNS)
        assert page.status_code == 200
        assert "admin@localhost" in page.text and "Sign out" in page.text
        assert page.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        for section in SECTIONS:
            shown = client.get(f"/projects/default/env/dev/{section}")
            assert shown.status_code == 200, section
            assert section.capitalize() in shown.text
        assert client.get("/projects/default/env/dev/nope").status_code == 404
        assert client.get("/projects/default/env/nowhere/runs").status_code == 404

    with browser(stack) as other:  # the same link again, from another browser
        again = other.get(link)
        assert again.status_code == 401 and "This sign-in link does not work" in again.text
        assert "set-cookie" not in again.headers


def test_an_expired_link_does_not_sign_in(stack: Stack) -> None:
    token = f"htl_{uuid.uuid4().hex}"
    store = open_store(stack.database_url)
    try:
        admin = store.users.get_user_by_email("admin@localhost")
        assert admin is not None
        store.users.add_login_link(admin.id, hash_key(token), time.time() - 25 * 3600, time.time() - 3600)
    finally:
        store.close()
    with browser(stack) as client:
        answer = client.get("/login", params={"token": token})
        assert answer.status_code == 401 and "expired" in answer.text
        assert client.get(RUNS).status_code == 303


def test_a_sign_in_returns_to_the_page_asked_for(stack: Stack) -> None:
    token = LINK.search(new_link(stack)).group(2)  # type: ignore[union-attr]
    with browser(stack) as client:
        answer = client.get("/login", params={"token": token, "next": f"{RUNS}?status=FAILED"})
        assert answer.status_code == 303 and answer.headers["location"] == f"{RUNS}?status=FAILED"
        evil = LINK.search(new_link(stack)).group(2)  # type: ignore[union-attr]
        answer = client.get("/login", params={"token": evil, "next": "//evil.example/"})
        assert answer.headers["location"] == "/"


def test_actions_without_the_csrf_token_are_refused_and_logout_ends_the_session(
    stack: Stack, signed_in: httpx.Client
) -> None:
    token = csrf_of(signed_in)
    assert signed_in.post("/logout").status_code == 403
    assert signed_in.post("/logout", data={"csrf_token": "0" * 64}).status_code == 403
    assert signed_in.post("/logout", headers={"X-CSRF-Token": token[:-1] + "x"}).status_code == 403
    refused = signed_in.post("/logout", data={"csrf_token": ""})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    assert signed_in.get(RUNS).status_code == 200  # still signed in

    cookie = signed_in.cookies["hightide_session"]
    out = signed_in.post("/logout", data={"csrf_token": token})
    assert out.status_code == 303 and out.headers["location"] == "/login?signed_out=1"
    assert 'hightide_session=""' in out.headers["set-cookie"] or "Max-Age=0" in out.headers["set-cookie"]
    assert "You are signed out" in signed_in.get("/login?signed_out=1").text
    with browser(stack) as replayed:  # the old cookie no longer opens anything
        replayed.cookies.set("hightide_session", cookie)
        assert replayed.get(RUNS).status_code == 303


def test_the_csrf_token_of_one_session_does_not_pass_for_another(stack: Stack, signed_in: httpx.Client) -> None:
    with browser(stack) as other:
        assert other.get(new_link(stack)).status_code == 303
        assert other.post("/logout", data={"csrf_token": csrf_of(signed_in)}).status_code == 403
        assert other.post("/logout", headers={"X-CSRF-Token": csrf_of(other)}).status_code == 303


def test_the_api_keeps_its_bearer_keys_and_needs_no_csrf(stack: Stack, http: httpx.Client) -> None:
    created = http.post("/api/v1/tasks/echo/trigger", json={"payload": {"n": 1}})
    assert created.status_code == 200, created.text
    with browser(stack) as client:  # and a dashboard cookie is no key to the API
        assert client.get(new_link(stack)).status_code == 303
        assert client.get("/api/v1/runs").status_code == 401


def test_the_runs_page_lists_newest_first_and_pages_by_cursor(
    stack: Stack, http: httpx.Client, signed_in: httpx.Client, client: object
) -> None:
    tag = f"page-{uuid.uuid4().hex[:8]}"
    items = [{"payload": {"n": i}, "options": {"tags": [tag]}} for i in range(51)]
    made = http.post("/api/v1/tasks/echo/batch", json={"items": items})
    assert made.status_code == 200, made.text
    ids = [run["id"] for run in made.json()["runs"]]
    wait_finished(client, ids[-1])

    first = signed_in.get(RUNS, params={"tag": tag})
    assert first.status_code == 200
    shown = re.findall(r'id="run-(run_[0-9a-z]{22})"', first.text)
    assert shown[:50] == list(reversed(ids))[:50] and len(shown) == 50
    older = re.search(r'href="([^"]+cursor=[^"]+)" rel="next"', first.text)
    assert older, "no link to the older runs"
    second = signed_in.get(older.group(1).replace("&amp;", "&"))
    assert re.findall(r'id="run-(run_[0-9a-z]{22})"', second.text) == [ids[0]]
    assert 'rel="next"' not in second.text and "← Newest" in second.text

    nothing = signed_in.get(RUNS, params={"tag": tag, "status": "FAILED"})
    assert "No runs match these filters" in nothing.text
    bad = signed_in.get(RUNS, params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422 and "cursor" in bad.text and "<html" in bad.text


def test_static_files_are_served_with_cache_headers(stack: Stack) -> None:
    with browser(stack) as client:
        page = client.get("/login").text
        css = re.search(r'href="(/static/dashboard\.css\?v=[0-9a-f]+)"', page)
        assert css, page
        answer = client.get(css.group(1))
        assert answer.status_code == 200 and "prefers-color-scheme" in answer.text
        assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
        for script in ("htmx.min.js", "htmx-ext-sse.min.js"):
            assert client.get(f"/static/vendor/{script}").headers["cache-control"] == "no-cache"
            assert client.get(f"/static/vendor/{script.replace('.min.js', '.LICENSE')}").status_code == 200


def new_member_beside(stack: Stack, project: str) -> str:
    """Make project ``project`` (with a dev environment) and a new member of ``default`` only; returns
    the member's login link."""
    store = open_store(stack.database_url)
    try:
        other = store.environments.ensure_project(project, time.time())
        store.environments.ensure_environment(other, "dev", "dev", 10, time.time())
    finally:
        store.close()
    email = f"member-{uuid.uuid4().hex[:6]}@example.com"
    created = users(stack, "create", email)
    assert created.returncode == 0, created.stderr
    assert f"Created {email}, member of default." in created.stdout
    return LINK.search(created.stdout).group(1)  # type: ignore[union-attr]


def test_members_see_their_projects_only(stack: Stack) -> None:
    link = new_member_beside(stack, "other")
    with browser(stack) as member:
        assert member.get(link).status_code == 303
        assert member.get(RUNS).status_code == 200
        assert member.get("/projects/other/env/dev/runs").status_code == 404
        assert 'class="role"' not in member.get(RUNS).text  # no "admin" badge
    with browser(stack) as admin:
        assert admin.get(new_link(stack)).status_code == 303
        assert admin.get("/projects/other/env/dev/runs").status_code == 200


def test_the_users_command_explains_what_it_cannot_do(stack: Stack) -> None:
    unknown = users(stack, "login-link", "nobody@example.com")
    assert unknown.returncode == 1
    assert "no user 'nobody@example.com'; create one with `hightide users create nobody@example.com`" in unknown.stderr
    bad = users(stack, "create", "not-an-address")
    assert bad.returncode == 1 and "not an email address: 'not-an-address'" in bad.stderr
    again = users(stack, "create", "admin@localhost", "--admin")
    assert again.returncode == 1 and "user admin@localhost already exists" in again.stderr
    project = users(stack, "create", "someone@example.com", "--project", "missing")
    assert project.returncode == 1 and "no project 'missing'" in project.stderr
    assert "Traceback" not in unknown.stderr + bad.stderr + again.stderr + project.stderr
