"""Signing in to the dashboard the way a user meets it: the link ``hightide dev`` prints (and writes
to ``.hightide/dev.env``), and the admin link of ``hightide server``'s first start."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.acceptance.conftest import Background, Dev, hightide, wait_until_serving
from tests.support import free_port, fresh_postgres_database

LINK = r"http://127\.0\.0\.1:{port}/login\?token=htl_[A-Za-z0-9_-]+"


@contextmanager
def signs_in(link: str) -> Iterator[httpx.Client]:
    """A browser-like client signed in by ``link``."""
    with httpx.Client(follow_redirects=False, timeout=30) as client:
        answer = client.get(link)
        assert answer.status_code == 303, answer.text
        yield client


def test_dev_prints_the_dashboard_link_and_writes_it_to_dev_env(
    project: Callable[..., Path], dev: Callable[..., Dev]
) -> None:
    handle = dev(project())
    printed = re.search(rf"Dashboard: ({LINK.format(port=handle.port)})", handle.output())
    assert printed, handle.output()
    link = printed.group(1)
    lines = (handle.root / ".hightide" / "dev.env").read_text().splitlines()
    assert f"HIGHTIDE_DASHBOARD_URL={link}" in lines

    with signs_in(link) as browser:
        home = browser.get(f"{handle.api_url}/")
        assert home.status_code == 303 and home.headers["location"] == "/projects/default/env/dev/runs"
        page = browser.get(f"{handle.api_url}/projects/default/env/dev/runs")
        assert page.status_code == 200 and "admin@localhost" in page.text
    with httpx.Client(follow_redirects=False, timeout=30) as again:
        assert again.get(link).status_code == 401  # it worked once


@contextmanager
def database(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield str(tmp_path / "server.db")
    else:
        with fresh_postgres_database("hightide_dash") as url:
            yield url


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_server_prints_the_admins_link_on_its_first_start_only(
    backend: str, tmp_path: Path, background: Callable[..., Background]
) -> None:
    with database(backend, tmp_path) as url:
        port = free_port()
        args = ("server", "--database-url", url, "--port", str(port))
        first = background(*args, cwd=tmp_path, name="server-first")
        wait_until_serving(first, f"http://127.0.0.1:{port}")
        out = first.wait_for_output("Dashboard:")
        assert "created the dashboard admin admin@localhost" in out
        link = re.search(rf"Dashboard: ({LINK.format(port=port)})", out)
        assert link, out
        with signs_in(link.group(1)) as browser:
            assert browser.get(f"http://127.0.0.1:{port}/projects/default/env/dev/runs").status_code == 200
        first.stop()

        port = free_port()
        second = background("server", "--database-url", url, "--port", str(port), cwd=tmp_path, name="server-again")
        wait_until_serving(second, f"http://127.0.0.1:{port}")
        assert "Dashboard:" not in second.output() and "created the dashboard admin" not in second.output()

        more = hightide(
            "users",
            "login-link",
            "admin@localhost",
            "--database-url",
            url,
            "--public-url",
            f"http://127.0.0.1:{port}",
            cwd=tmp_path,
        )
        assert more.returncode == 0, more.stderr
        assert "Login link for admin@localhost (works once, for 24 hours):" in more.stdout
        with signs_in(more.stdout.strip().splitlines()[-1]) as browser:
            assert browser.get(f"http://127.0.0.1:{port}/projects/default/env/prod/runs").status_code == 200
        second.stop()


def test_users_help_names_its_commands_and_options(tmp_path: Path) -> None:
    done = hightide("users", "--help", cwd=tmp_path)
    assert done.returncode == 0 and "create" in done.stdout and "login-link" in done.stdout
    create = hightide("users", "create", "--help", cwd=tmp_path)
    for text in ("--admin", "--project", "--database-url", "HIGHTIDE_DATABASE_URL", "--public-url"):
        assert text in create.stdout, text
