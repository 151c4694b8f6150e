"""Several ``hightide server`` processes on one PostgreSQL database, as behind a load balancer:
a cancel sent to one stops a run whose worker talks to the other, and both schedulers racing on
the same due runs enqueue each once, without errors in either log."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hightide import Client
from tests.acceptance.conftest import Background, hightide, pid_alive, runner_pids, wait_until_serving
from tests.support import assert_eventually, free_port, fresh_postgres_database, written_number
from tests.webhooks import webhook_receiver

TIMEOUT = 60.0

TASKS = """
    import asyncio
    import os
    from pathlib import Path

    from hightide import task


    @task(id="endless")
    async def endless(payload: dict) -> None:
        Path(payload["marker"]).write_text(str(os.getpid()))
        while True:
            await asyncio.sleep(0.05)


    @task(id="noop")
    async def noop(payload: dict) -> int:
        return payload["i"]


    @task(id="declined", retry={"max_attempts": 1})
    async def declined(payload: dict) -> None:
        raise ValueError(f"card {payload['i']} declined")
"""


@pytest.fixture
def database_url() -> Iterator[str]:
    with fresh_postgres_database("hightide_servers") as url:
        yield url


class Servers:
    def __init__(self, procs: list[Background], urls: list[str], key: str) -> None:
        self.procs, self.urls, self.key = procs, urls, key

    def client(self, i: int) -> Client:
        return Client(api_url=self.urls[i], secret_key=self.key)

    def assert_quiet(self) -> None:
        """Nothing went wrong on either server: no tracebacks, no errors, no 5xx."""
        for proc in self.procs:
            out = proc.output()
            for bad in ("Traceback", "ERROR", "Error", " 500 ", "exception"):
                assert bad not in out, f"{bad!r} in the log of {proc.name}:\n{out}"


@pytest.fixture
def servers(background: Callable[..., Background], tmp_path: Path, database_url: str) -> Servers:
    """Two servers started together on one new database (they race to migrate and bootstrap it)."""
    ports = [free_port(), free_port()]
    procs = [
        background(
            "server",
            "--database-url",
            database_url,
            "--port",
            str(port),
            "--lease-seconds",
            "2",
            cwd=tmp_path,
            name=f"server{i + 1}",
        )
        for i, port in enumerate(ports)
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    for proc, url in zip(procs, urls, strict=True):
        wait_until_serving(proc, url)
    done = hightide("keys", "create", "--env", "dev", "--database-url", database_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return Servers(procs, urls, done.stdout.strip())


def test_a_cancel_sent_to_one_server_stops_a_run_on_a_worker_of_the_other(
    project: Callable[..., Path], servers: Servers, worker: Callable[..., Background], tmp_path: Path
) -> None:
    root = project({"trigger/tasks.py": TASKS})
    worker(root, servers.urls[1], servers.key, "--concurrency", "1")
    marker = tmp_path / "runner.pid"

    with servers.client(0) as a, servers.client(1) as b:
        handle = a.trigger("endless", {"marker": str(marker)})
        runner = assert_eventually(
            lambda: written_number(marker),
            timeout=TIMEOUT,
            what="the run to start on the worker of server 2",
        )
        assert b.runs.retrieve(handle.id).status == "EXECUTING"

        assert a.runs.cancel(handle.id).status == "CANCELED"
        # The worker's heartbeat waits on server 2, which hears of the cancel by NOTIFY.
        assert_eventually(lambda: not pid_alive(runner), timeout=5.0, interval=0.02, what=f"runner {runner} to stop")
        run = b.runs.retrieve(handle.id)
        assert run.status == "CANCELED"
        assert [x.status for x in run.attempts] == ["CANCELED"]
    assert runner_pids(root) == [], "its slot's runner was stopped, and none is left running the run"
    servers.assert_quiet()


def test_two_servers_enqueue_each_of_200_delayed_runs_once(
    project: Callable[..., Path], servers: Servers, worker: Callable[..., Background]
) -> None:
    root = project({"trigger/tasks.py": TASKS})
    worker(root, servers.urls[1], servers.key, "--concurrency", "4")

    with servers.client(0) as a, servers.client(1) as b:
        items = [{"task": "noop", "payload": {"i": i}, "options": {"delay": "5s"}} for i in range(200)]
        ids = [h.id for h in a.batch_trigger(items).runs]
        assert {b.runs.retrieve(ids[0]).status, b.runs.retrieve(ids[-1]).status} == {
            "DELAYED"
        }  # still delayed, even on a slow machine

        def all_completed() -> list:
            runs = [b.runs.retrieve(run_id) for run_id in ids]
            done = [r for r in runs if r.status == "COMPLETED"]
            assert len(done) == 200, f"{len(done)} of 200 completed"
            return runs

        runs = assert_eventually(all_completed, timeout=TIMEOUT, interval=0.5, what="the 200 runs to complete")
    assert [r.output for r in runs] == list(range(200))
    assert {r.attempt_count for r in runs} == {1}, "each run was enqueued and executed once"
    servers.assert_quiet()


def test_two_servers_send_each_failed_runs_alert_once(
    project: Callable[..., Path], servers: Servers, worker: Callable[..., Background]
) -> None:
    root = project({"trigger/tasks.py": TASKS})
    worker(root, servers.urls[1], servers.key, "--concurrency", "4")
    with webhook_receiver() as hook, servers.client(0) as a:
        alert = a.alerts.create(url=hook.url, events=["run.failed"])
        ids = [h.id for h in a.batch_trigger([{"task": "declined", "payload": {"i": i}} for i in range(60)]).runs]
        # Both servers' deliverers race for the same deliveries: each still goes out once.
        assert_eventually(
            lambda: len(a.alerts.deliveries(alert.id, status="DELIVERED", limit=100)) == 60,
            timeout=TIMEOUT,
            interval=0.5,
            what="sixty alerts delivered",
        )
        sent = [json.loads(r.body)["data"]["run"]["id"] for r in hook.requests]
    assert sorted(sent) == sorted(ids), "each failed run's alert was sent exactly once"
    servers.assert_quiet()
