"""Retention through a real server (embedded as ``hightide server`` runs it) on SQLite and, where
reachable, PostgreSQL: a finished run older than the retention disappears, with its logs, and the
API answers 404 for it; a newer run and an unfinished one stay."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hightide.engine.environments import bootstrap, create_key, find_environment
from hightide.engine.options import TriggerSpec
from hightide.engine.runs import RunEngine
from hightide.store import open_store
from hightide.store.alerts import Try
from tests.support import embedded_server, eventually, free_port, fresh_postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "server.db")
        return
    with fresh_postgres_database("hightide_retention") as url:
        yield url


def _setup(url: str) -> tuple[str, list[str]]:
    """A key, and two runs made an hour ago: one cancelled then (finished), one still queued; and a
    webhook with two deliveries made then: one failed for good, one still to be tried."""
    store = open_store(url)
    try:
        store.migrate()
        bootstrap(store, time.time())
        env = find_environment(store, "dev")
        engine = RunEngine(store, clock=lambda: time.time() - 3600)
        engine.triggering.register_version(env, {"tasks": [{"id": "work"}]}, worker_id="w1")
        runs = [run for run, _ in engine.triggering.trigger(env, [TriggerSpec(task_id="work")] * 2)]
        engine.control.cancel(env, runs[0].id)
        alert = engine.alerts.create(env, f"http://127.0.0.1:{free_port()}/gone", ["run.failed"])
        done, pending = engine.alerts.test(env, alert.id), engine.alerts.test(env, alert.id)
        store.alerts.record(done, "{}", Try(time.time() - 3600, None, "refused", 1.0), next_try_at=None)
        return create_key(store, env, time.time()), [r.id for r in runs] + [alert.id, done.id, pending.id]
    finally:
        store.close()


async def test_a_finished_run_past_the_retention_is_deleted_and_the_rest_stays(database_url: str) -> None:
    key, (finished, queued, alert, done, pending) = _setup(database_url)
    port = free_port()
    async with (
        embedded_server(database_url, port, retention=600.0, purge_every=0.2),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}) as http,
    ):
        later = (await http.post("/api/v1/tasks/work/trigger", json={"payload": {}})).json()["id"]
        assert (await http.post(f"/api/v1/runs/{later}/cancel")).status_code == 200

        async def gone() -> bool:
            answer = await http.get(f"/api/v1/runs/{finished}")
            assert answer.status_code == 404, answer.text
            return True

        await eventually(gone, timeout=15, what="the finished run to be deleted")
        # The pass that deleted it saw the run cancelled a moment ago: within the retention, it
        # stays; the queued one is unfinished.
        assert (await http.get(f"/api/v1/runs/{later}")).json()["status"] == "CANCELED"
        assert (await http.get(f"/api/v1/runs/{queued}")).json()["status"] == "QUEUED"

        # The failed delivery goes with the retention; the one still to be tried stays.
        async def delivery_gone() -> bool:
            left = [d["id"] for d in (await http.get(f"/api/v1/alerts/{alert}/deliveries")).json()["data"]]
            assert done not in left and pending in left, left
            return True

        await eventually(delivery_gone, timeout=15, what="the failed delivery to be deleted")
