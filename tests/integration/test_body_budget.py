"""What a request body costs once parsed, through a real server: a body of many tiny values is
refused before it becomes Python objects, so the server's memory stays near its size."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import CLI, Stack, _start, _stop
from tests.support import free_port, wait_for_http


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Stack, int]]:
    """A server of its own (its peak memory is this test's alone), and its process id."""
    port = free_port()
    url = str(tmp_path / "server.db")
    proc = _start([*CLI, "server", "--database-url", url, "--port", str(port)], tmp_path / "log.txt", tmp_path)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz")
        stack = Stack(f"http://127.0.0.1:{port}", "", url, tmp_path / "log.txt")
        stack.key = stack.new_key()
        yield stack, proc.pid
    finally:
        _stop(proc)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc to read peak memory")
def test_a_body_of_two_million_empty_objects_is_refused_before_it_is_parsed(server: tuple[Stack, int]) -> None:
    stack, pid = server
    body = b'{"payload": [' + b",".join([b"{}"] * 2_000_000) + b"]}"  # 6 MB, about 150 MB parsed
    with stack.http() as http:
        http.timeout = httpx.Timeout(120)
        assert http.post("/api/v1/tasks/t/trigger", json={"payload": [{}] * 1000}).status_code == 404  # warm
        before = _peak_rss_mb(pid)
        response = http.post("/api/v1/tasks/t/trigger", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 413, response.text[:500]
        error = response.json()["error"]
        assert error["code"] == "payload_too_large"
        assert error["message"].startswith("the request body holds more than 2,000,000 JSON values")
        assert error["details"] == {"field": "body", "limit": 2_000_000}
        assert http.get("/healthz").json() == {"status": "ok"}
    # The body itself is held (6 MB, and a copy while counting); its parsed form never is.
    assert _peak_rss_mb(pid) - before < 60, f"peak memory grew from {before:.0f} MB to {_peak_rss_mb(pid):.0f} MB"
