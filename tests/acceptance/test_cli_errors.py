"""Mistakes a user makes at the command line get one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from hightide.types import MAX_CONCURRENCY, MAX_PREFETCH
from tests.acceptance.conftest import Server, hightide
from tests.support import free_port


def _one_line_error(done, *fragments: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_no_config_found(tmp_path: Path) -> None:
    _one_line_error(hightide("dev", cwd=tmp_path), "hightide.config.py", "hightide init")


def test_port_in_use(project: Callable[..., Path]) -> None:
    root = project()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        _one_line_error(hightide("dev", "--port", str(port), cwd=root), f"port {port}", "already in use", "--port")


def test_server_unreachable(tmp_path: Path) -> None:
    env = {"HIGHTIDE_API_URL": f"http://127.0.0.1:{free_port()}", "HIGHTIDE_SECRET_KEY": "ht_dev_x"}
    _one_line_error(hightide("runs", "list", cwd=tmp_path, env=env), "could not reach the Hightide server")


def test_no_key(tmp_path: Path) -> None:
    _one_line_error(hightide("trigger", "hello-world", cwd=tmp_path), "HIGHTIDE_SECRET_KEY")


def test_bad_key_and_unknown_run(server: Callable[..., Server], project: Callable[..., Path], tmp_path: Path) -> None:
    srv = server()
    env = {"HIGHTIDE_API_URL": srv.api_url, "HIGHTIDE_SECRET_KEY": "ht_dev_not-a-key"}
    done = hightide("runs", "list", cwd=tmp_path, env=env)
    _one_line_error(done, "invalid secret key", "HIGHTIDE_SECRET_KEY", "hightide dev")
    worker = hightide("worker", cwd=project(), env=env)
    _one_line_error(worker, "secret key", "HIGHTIDE_SECRET_KEY", "hightide dev")
    for jargon in ("Authorization", "Bearer", "HTTP", "header"):  # a shell user sets a variable, not a header
        assert jargon not in done.stderr + worker.stderr, done.stderr + worker.stderr
    env["HIGHTIDE_SECRET_KEY"] = srv.create_key()
    _one_line_error(hightide("runs", "get", "run_missing", cwd=tmp_path, env=env), "run_missing", "not found")
    _one_line_error(hightide("trigger", "nope", "--payload", "{}", cwd=tmp_path, env=env), "'nope' is not registered")


def test_bad_payload_json(tmp_path: Path) -> None:
    _one_line_error(hightide("trigger", "x", "--payload", "{oops", cwd=tmp_path), "--payload is not valid JSON")


def test_unknown_environment_for_a_key(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    _one_line_error(
        hightide("keys", "create", "--env", "qa", "--database-url", str(db), cwd=tmp_path), "'qa'", "does not exist"
    )


def test_worker_bounds_concurrency_and_prefetch(tmp_path: Path) -> None:
    """Beyond what one heartbeat may name, a worker could not keep its leases: refused at once."""
    for option, value in (("--concurrency", MAX_CONCURRENCY + 1), ("--prefetch", MAX_PREFETCH + 1)):
        done = hightide("worker", option, str(value), cwd=tmp_path)
        limit = str(value - 1)
        assert done.returncode != 0 and option in done.stderr and limit in done.stderr, done.stderr
