"""A self-hosted ``hightide server`` keeps its memory bounded under hostile uploads: an
unauthenticated body is refused before it is read, an authenticated one is cut off at the byte
limit as it streams, and the server keeps answering meanwhile."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from tests.acceptance.conftest import Server

MB = 1024 * 1024
LIMIT = 64 * MB  # the server's body limit with the default payload limit
CHUNK = b"[" * (64 * 1024)  # not even JSON: a server that parsed it would have to hold it all first


def _memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


class Upload:
    """A chunked POST of up to ``total`` bytes, counting what the server let it send; it can hold
    still after ``pause_at`` bytes until ``resume`` is set (to act while the body is mid-stream)."""

    def __init__(self, url: str, total: int, headers: dict[str, str], pause_at: int | None = None) -> None:
        self.url, self.total, self.headers, self.pause_at = url, total, headers, pause_at
        self.sent = 0
        self.paused, self.resume = threading.Event(), threading.Event()
        self.response: httpx.Response | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _body(self) -> Iterator[bytes]:
        while self.sent < self.total:
            if self.pause_at is not None and self.sent >= self.pause_at and not self.resume.is_set():
                self.paused.set()
                assert self.resume.wait(60), "never resumed"
            self.sent += len(CHUNK)
            yield CHUNK

    def _run(self) -> None:
        try:
            headers = {"Content-Type": "application/json", **self.headers}
            self.response = httpx.post(self.url, content=self._body(), headers=headers, timeout=120)
        except BaseException as exc:
            self.error = exc

    def start(self) -> Upload:
        self.thread.start()
        return self

    def result(self) -> httpx.Response:
        self.thread.join(180)
        assert not self.thread.is_alive(), "the upload did not end"
        assert self.error is None, repr(self.error)
        assert self.response is not None
        return self.response


def test_hostile_uploads_leave_memory_bounded_and_the_server_answering(server: Callable[..., Server]) -> None:
    srv = server()
    key = srv.create_key()
    trigger = f"{srv.api_url}/api/v1/tasks/any/trigger"
    with httpx.Client(base_url=srv.api_url, timeout=30) as http:
        assert http.get("/healthz").status_code == 200
        baseline = _memory_kb(srv.proc.pid, "VmRSS")

        # An authenticated body over the limit, held still half-way through the limit...
        capped = Upload(trigger, 512 * MB, {"Authorization": f"Bearer {key}"}, pause_at=LIMIT // 2).start()
        assert capped.paused.wait(60), "the capped upload never got half-way"
        # ... while three unauthenticated uploads of 512 MB each are refused before their bodies.
        anonymous = [Upload(trigger, 512 * MB, {}).start() for _ in range(3)]
        forged = Upload(trigger, 512 * MB, {"Authorization": "Bearer ht_dev_forged"}).start()
        for upload in [*anonymous, forged]:
            response = upload.result()
            assert response.status_code == 401, response.text
            assert response.json()["error"]["code"] == "authentication_error"
            assert response.headers["connection"] == "close"
            assert upload.sent < 32 * MB, f"the server read {upload.sent:,} bytes of a refused body"
        # Meanwhile the server answers, with a body half-read.
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/api/v1/runs", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        capped.resume.set()

        response = capped.result()
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "payload_too_large"
        assert LIMIT <= capped.sent < LIMIT + 32 * MB, f"{capped.sent:,} bytes were sent"
        assert http.get("/healthz").status_code == 200

    peak = _memory_kb(srv.proc.pid, "VmHWM")  # the most the server's memory ever was
    assert peak - baseline < 150 * 1024, f"the server grew from {baseline // 1024} MB to a peak of {peak // 1024} MB"
