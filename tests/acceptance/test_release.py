"""Stopping ``hightide worker`` loses and cancels nothing: what it does not finish within its grace
period it hands back to the queue (no attempt used), and the runs continue on another worker."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from hightide import Client, Run
from hightide.core.protocol import Execution
from hightide.sdk.http import ApiSession
from hightide.types import MAX_CLAIM_BATCH, MAX_RELEASE_RUNS
from hightide.worker.api import WorkerApi
from hightide.worker.events import RunEvent
from hightide.worker.releases import Releaser
from tests.acceptance.conftest import Background, Server
from tests.support import assert_eventually, free_port, wait_finished

TIMEOUT = 30.0  # below the server's 30 s lease: a run that waited for its lease would not make it

TASKS = """
    import asyncio
    import os
    from pathlib import Path

    from hightide import Context, step, task


    def note(folder: str, name: str) -> str:
        with open(Path(folder) / name, "a") as handle:
            handle.write(f"{os.getpid()}\\n")
        return name


    # One attempt only: a release that used an attempt, or counted as a failure, would fail the run.
    @task(id="long", retry={"max_attempts": 1})
    async def long(payload: dict, ctx: Context) -> str:
        folder, run = payload["folder"], ctx.run.id
        note(folder, f"{run}.started")
        await step("prepare", note, folder, f"{run}.prepared")  # durable: never again once recorded
        await asyncio.sleep(payload["seconds"])
        note(folder, f"{run}.done")
        return f"done on attempt {ctx.attempt.number}"


    @task(id="quick", retry={"max_attempts": 1})
    async def quick(payload: dict) -> int:
        return payload["n"]
"""


def _lines(folder: Path, name: str) -> int:
    path = folder / name
    return len(path.read_text().splitlines()) if path.exists() else 0


def _statuses(client: Client, ids: list[str]) -> list[str]:
    return [client.runs.retrieve(run_id).status for run_id in ids]


def _stop(proc: Background) -> int:
    os.kill(proc.pid, signal.SIGTERM)
    return proc.wait(timeout=TIMEOUT)


def test_a_rolling_restart_with_a_grace_shorter_than_the_runs_loses_and_cancels_nothing(
    project: Callable[..., Path],
    server: Callable[..., Server],
    worker: Callable[..., Background],
    background: Callable[..., Background],
    tmp_path: Path,
) -> None:
    root = project({"trigger/work.py": TASKS})
    hosted = server("--lease-seconds", "60")  # a run that waited for its lease would time out here
    key = hosted.create_key("dev")
    notes = tmp_path / "notes"
    notes.mkdir()
    env = {"HIGHTIDE_API_URL": hosted.api_url, "HIGHTIDE_SECRET_KEY": key}
    first = worker(root, hosted.api_url, key, "--concurrency", "2", "--shutdown-grace", "1")
    second = worker(root, hosted.api_url, key, "--concurrency", "2", "--shutdown-grace", "0")

    with Client(api_url=hosted.api_url, secret_key=key) as client:
        ids = [client.trigger("long", {"folder": str(notes), "seconds": 8}).id for _ in range(4)]
        assert_eventually(
            lambda: all(_lines(notes, f"{i}.prepared") == 1 for i in ids), timeout=TIMEOUT, what="4 runs to start"
        )

        # Each old worker is stopped while its replacement starts: a grace of 1 s, then none.
        replacements = [background("worker", "--concurrency", "2", cwd=root, env=env, name="replacement1")]
        assert _stop(first) == 0
        assert set(_statuses(client, ids)) <= {"EXECUTING", "QUEUED"}  # its two: queued, or taken again
        replacements.append(background("worker", "--concurrency", "2", cwd=root, env=env, name="replacement2"))
        assert _stop(second) == 0
        assert set(_statuses(client, ids)) <= {"EXECUTING", "QUEUED"}

        runs = [wait_finished(client, run_id, TIMEOUT) for run_id in ids]

    for run in runs:
        assert (run.status, run.output, run.attempt_count) == ("COMPLETED", "done on attempt 1", 1), run
        assert [a.status for a in run.attempts] == ["COMPLETED"]
        assert _lines(notes, f"{run.id}.done") == 1  # completed exactly once
        assert _lines(notes, f"{run.id}.prepared") == 1  # the step replayed from the journal
        assert _lines(notes, f"{run.id}.started") == 2  # it was released once, mid-way
    assert "CANCELED" not in first.output() + second.output()
    assert first.output().count("RELEASED") == 2 and second.output().count("RELEASED") == 2
    # A worker prints a run's line once the server took its report: the run can be seen finished first.
    assert_eventually(lambda: sum(p.output().count("COMPLETED") for p in replacements) == 4, timeout=TIMEOUT)


def test_prefetched_runs_go_back_at_once_while_the_executing_one_finishes(
    project: Callable[..., Path],
    server: Callable[..., Server],
    worker: Callable[..., Background],
    tmp_path: Path,
) -> None:
    root = project({"trigger/work.py": TASKS})
    hosted = server()
    key = hosted.create_key("dev")
    notes = tmp_path / "notes"
    notes.mkdir()
    busy = worker(root, hosted.api_url, key, "--concurrency", "1", "--shutdown-grace", "20")

    with Client(api_url=hosted.api_url, secret_key=key) as client:
        # Quick runs teach the worker to claim ahead of its one slot.
        for n in range(5):
            assert wait_finished(client, client.trigger("quick", {"n": n}).id, TIMEOUT).status == "COMPLETED"
        # One claim takes them all: the long run first (its priority), the others wait for its slot.
        items = [
            {"task": "long", "payload": {"folder": str(notes), "seconds": 6}, "options": {"priority": 60}},
            *({"task": "quick", "payload": {"n": n}} for n in range(3)),
        ]
        long, *quick = client.batch_trigger(items).ids
        assert_eventually(lambda: _lines(notes, f"{long}.prepared") == 1, timeout=TIMEOUT, what="the long run")
        # Claimed ahead, not started: as many as the quick runs' speed calls for (on a loaded machine
        # they look slower and fewer are claimed ahead), the rest still queued.
        ahead = [
            run_id for run_id, status in zip(quick, _statuses(client, quick), strict=True) if status == "EXECUTING"
        ]
        assert ahead, "no run was claimed ahead of the worker's one slot"
        assert set(_statuses(client, quick)) <= {"EXECUTING", "QUEUED"}

        os.kill(busy.pid, signal.SIGTERM)

        # The prefetched runs are queued again at once, while the long run still has its grace.
        def handed_back() -> list[Run]:
            runs = [client.runs.retrieve(run_id) for run_id in quick]
            assert [r.status for r in runs] == ["QUEUED"] * 3
            return runs

        released = assert_eventually(handed_back, timeout=TIMEOUT)
        assert busy.running and client.runs.retrieve(long).status == "EXECUTING"
        # Never started: as if never claimed (no attempt, no start time: a ttl would still apply).
        assert all(r.attempt_count == 0 and r.attempts == [] and r.started_at is None for r in released)
        assert busy.wait(timeout=TIMEOUT) == 0
        assert client.runs.retrieve(long).status == "COMPLETED"  # within the grace: it finished

        worker(root, hosted.api_url, key, "--concurrency", "1")
        runs = [wait_finished(client, run_id, TIMEOUT) for run_id in quick]

    assert [(r.status, r.output, r.attempt_count) for r in runs] == [("COMPLETED", n, 1) for n in range(3)]
    assert "CANCELED" not in busy.output()


def test_a_worker_stopped_while_claiming_leaves_nothing_executing(
    project: Callable[..., Path],
    server: Callable[..., Server],
    worker: Callable[..., Background],
    tmp_path: Path,
) -> None:
    root = project({"trigger/work.py": TASKS})
    hosted = server()
    key = hosted.create_key("dev")
    notes = tmp_path / "notes"
    notes.mkdir()
    stopped = worker(root, hosted.api_url, key, "--concurrency", "2", "--shutdown-grace", "0")

    with Client(api_url=hosted.api_url, secret_key=key) as client:
        # The worker's claim long-poll is waiting: the runs arrive as it is told to stop, so its
        # claim is answered (or not) while the stop begins. Whatever it took goes back at once.
        items = [{"payload": {"folder": str(notes), "seconds": 2}}] * 4
        ids = client.batch_trigger(items, "long").ids
        os.kill(stopped.pid, signal.SIGTERM)
        assert stopped.wait(timeout=TIMEOUT) == 0
        runs = [client.runs.retrieve(run_id) for run_id in ids]
        assert [r.status for r in runs] == ["QUEUED"] * 4, [(r.status, r.attempts) for r in runs]
        assert all(r.attempt_count <= 1 for r in runs)

        worker(root, hosted.api_url, key, "--concurrency", "4")
        runs = [wait_finished(client, run_id, TIMEOUT) for run_id in ids]

    assert [(r.status, r.attempt_count) for r in runs] == [("COMPLETED", 1)] * 4
    assert "CANCELED" not in stopped.output()


class _LosingProxy:
    """An HTTP proxy in front of the server that loses the answer to the first claim that took
    runs: it closes the connection instead of replying, as a timeout or a network cut would. With
    ``busy``, it first answers that many requests to ``busy_path`` itself, as an overloaded proxy
    does: 429 and a page of its own."""

    def __init__(self, upstream: str, busy: int = 0, busy_path: str = "/api/v1/worker/claim") -> None:
        self.upstream = httpx.Client(base_url=upstream, timeout=60)
        self.lost: list[list[str]] = []  # the run ids of each answer lost
        self.busy, self.refused = busy, 0
        self.losing = not busy
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == busy_path and proxy.refused < proxy.busy:
                    proxy.refused += 1
                    page = b"<html>429 Too Many Requests</html>"
                    self.send_response(429)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)
                    return
                skip = {"host", "content-length", "connection", "transfer-encoding", "accept-encoding"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                reply = proxy.upstream.request(self.command, self.path, content=body, headers=headers)
                if self.path == "/api/v1/worker/claim" and proxy.losing and reply.json().get("runs"):
                    proxy.losing = False
                    proxy.lost.append([e["run_id"] for e in reply.json()["runs"]])
                    self.close_connection = True  # no reply at all
                    return
                self.send_response(reply.status_code)
                self.send_header("Content-Type", reply.headers.get("content-type", "application/json"))
                self.send_header("Content-Length", str(len(reply.content)))
                self.end_headers()
                self.wfile.write(reply.content)

            do_GET = do_POST = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.upstream.close()


def test_a_claim_whose_answer_was_lost_is_tried_again_and_gets_the_same_run(
    project: Callable[..., Path],
    server: Callable[..., Server],
    worker: Callable[..., Background],
    tmp_path: Path,
) -> None:
    root = project({"trigger/work.py": TASKS})
    hosted = server("--lease-seconds", "60")  # without the claim id, the run would wait for this lease
    key = hosted.create_key("dev")
    proxy = _LosingProxy(hosted.api_url)
    try:
        behind = worker(root, proxy.url, key, "--concurrency", "1")
        with Client(api_url=hosted.api_url, secret_key=key) as client:
            handle = client.trigger("quick", {"n": 7})
            run = wait_finished(client, handle.id, TIMEOUT)
        behind.stop()  # while it can still reach the server through the proxy
    finally:
        proxy.close()

    assert proxy.lost == [[handle.id]]
    assert (run.status, run.output, run.attempt_count) == ("COMPLETED", 7, 1)
    assert [a.status for a in run.attempts] == ["COMPLETED"]


@pytest.mark.parametrize("path", ["/api/v1/worker/claim", "/api/v1/worker/heartbeat", "/api/v1/worker/complete"])
def test_a_worker_behind_a_busy_proxy_keeps_trying_and_loses_nothing(
    project: Callable[..., Path], server: Callable[..., Server], worker: Callable[..., Background], path: str
) -> None:
    """A proxy's own 429 page is "not now", not a refusal: the worker tries again, it does not stop."""
    root = project({"trigger/work.py": TASKS})
    hosted = server("--lease-seconds", "60")
    key = hosted.create_key("dev")
    proxy = _LosingProxy(hosted.api_url, busy=3, busy_path=path)
    try:
        behind = worker(root, proxy.url, key, "--concurrency", "1")
        with Client(api_url=hosted.api_url, secret_key=key) as client:
            slow = client.trigger("long", {"folder": str(root), "seconds": 12 if "heartbeat" in path else 0})
            quick = client.trigger("quick", {"n": 3})
            runs = [wait_finished(client, run_id, TIMEOUT * 2) for run_id in (slow.id, quick.id)]
        assert proxy.refused == 3
        behind.check_running()
        behind.stop()
    finally:
        proxy.close()

    assert [(r.status, r.attempt_count) for r in runs] == [("COMPLETED", 1)] * 2


def test_a_worker_stopping_with_more_runs_than_one_release_takes_gives_them_all_back(
    server: Callable[..., Server],
) -> None:
    """A worker with many slots holds more runs than the server takes in one release: it gives them
    back in several, and every one is queued again with no attempt used."""
    hosted = server("--lease-seconds", "300", "--concurrency-limit", "5000")
    key = hosted.create_key("dev")
    count = MAX_RELEASE_RUNS + 2 * MAX_CLAIM_BATCH
    events: list[RunEvent] = []

    async def hold_and_give_back() -> list[Execution]:
        session = ApiSession(hosted.api_url, key)
        api = WorkerApi(session, "wkr_many")
        try:
            version = (await api.register({"tasks": [{"id": "many"}]})).version_id
            for start in range(0, count, 1000):
                items = [{"payload": {"n": n}} for n in range(start, min(start + 1000, count))]
                await session.request("POST", "/api/v1/tasks/many/batch", json={"items": items})
            held: list[Execution] = []
            while len(held) < count:
                claim_id = uuid.uuid4().hex
                held += await api.claim(version, MAX_CLAIM_BATCH, 0, claim_id)
            releaser = Releaser(api, events.append)
            releaser.give_back(held)
            await releaser.wait(60)
            return held
        finally:
            await session.aclose()

    held = asyncio.run(hold_and_give_back())
    assert len(held) == count
    assert len([e for e in events if e.status == "RELEASED"]) == count
    with Client(api_url=hosted.api_url, secret_key=key) as client:
        for execution in (held[0], held[-1]):
            run = client.runs.retrieve(execution.run_id)
            assert (run.status, run.attempt_count) == ("QUEUED", 1)
