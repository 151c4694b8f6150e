"""Several servers on one PostgreSQL database: two engines, each with its own store, scheduler and
wake-ups, as two ``hightide server`` processes have. A cancel through one reaches a worker's
heartbeat on the other, their schedulers racing on the same due runs apply each change once, and a
key revoked through one is refused by the other."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hightide.core.states import RunStatus
from hightide.engine.base import cancel_key
from hightide.engine.environments import KeyAuthenticator, bootstrap, create_key, find_environment, hash_key
from hightide.engine.options import TriggerSpec
from hightide.engine.runs import EngineSettings, RunEngine
from hightide.engine.scheduler import Scheduler
from hightide.engine.tokens import TokenSpec
from hightide.errors import AuthenticationError
from hightide.store import Store, open_store
from hightide.store.changes import Change
from hightide.store.records import Environment, Version
from tests.support import eventually, fresh_postgres_database

TASKS = {"tasks": [{"id": "endless"}, {"id": "later"}]}


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_postgres_database("hightide_multi") as url:
        yield url


@dataclass
class Server:
    """What one server process holds: its store, engine and scheduler, attached to the loop."""

    store: Store
    engine: RunEngine
    scheduler: Scheduler
    task: asyncio.Task[None] | None = None


@contextlib.asynccontextmanager
async def start_servers(url: str, count: int, settings: EngineSettings) -> AsyncIterator[list[Server]]:
    servers: list[Server] = []
    try:
        for _ in range(count):
            store = open_store(url)
            store.migrate()
            bootstrap(store, time.time())
            engine = RunEngine(store, settings)
            engine.attach(asyncio.get_running_loop())
            store.start()
            server = Server(store, engine, Scheduler(engine))
            server.task = asyncio.create_task(server.scheduler.run())
            servers.append(server)
        yield servers
    finally:
        for server in servers:
            server.scheduler.stop()
            if server.task is not None:
                await server.task
            server.engine.detach()
            server.store.close()


async def listening(a: Server, b: Server, env: Environment) -> None:
    """Wait until ``b`` hears what ``a`` commits (LISTEN starts in a thread: a NOTIFY sent before
    it listens is lost): trigger on ``a`` until ``b`` hears one."""
    heard: list[Change] = []
    b.store.add_listener(heard.extend)
    ids: list[str] = []

    async def heard_one() -> bool:
        run = a.engine.triggering.trigger(env, [TriggerSpec(task_id="later", delay_until=time.time() + 3600)])[0][0]
        ids.append(run.id)
        return any(c.run_id in ids for c in heard)

    try:
        await eventually(heard_one, timeout=10, interval=0.1, what="the second server to hear the first")
    finally:
        b.store.remove_listener(heard.extend)


def _version(server: Server, env: Environment) -> Version:
    return server.engine.triggering.register_version(env, TASKS, worker_id="w1")


async def test_a_cancel_on_one_server_wakes_the_heartbeat_waiting_on_another(pg_url: str) -> None:
    # Long-polls re-check the database only every 30 s here: only the notification can be quick.
    slow_polls = EngineSettings(claim_poll_interval=30.0)
    async with start_servers(pg_url, 2, slow_polls) as (a, b):
        env = find_environment(a.store, "dev")
        version = _version(b, env)
        await listening(a, b, env)
        run = a.engine.triggering.trigger(env, [TriggerSpec(task_id="endless")])[0][0]
        assert [r.id for r in b.engine.execution.claim(env, "w1", version, 10)] == [run.id]

        heartbeat = asyncio.create_task(b.engine.execution.heartbeat(env, "w1", [(run.id, 1)], wait=25.0))
        notifier = b.engine.core.notifier
        assert notifier is not None

        async def heartbeat_waiting() -> bool:  # parked on the cancel wake-up (it would wait 25 s)
            return bool(notifier._waiters.get(cancel_key(env.id)))

        await eventually(heartbeat_waiting, timeout=5, what="the heartbeat to wait for a cancel")
        assert not heartbeat.done()
        cancelled = await asyncio.to_thread(a.engine.control.cancel, env, run.id)
        assert cancelled.status == RunStatus.CANCELED

        assert await asyncio.wait_for(heartbeat, timeout=5.0) == [run.id]


async def test_two_schedulers_racing_on_due_runs_apply_each_change_once(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    short_leases = EngineSettings(lease_seconds=0.5)
    async with start_servers(pg_url, 2, short_leases) as (a, b):
        env = find_environment(a.store, "dev")
        version = _version(a, env)
        due = time.time() + 1.0
        # 200 delayed runs due at once, 50 delayed runs whose ttl (counted from their enqueue) ends
        # before anyone claims them, 50 claimed runs whose worker never heartbeats.
        delayed = [r.id for r, _ in a.engine.triggering.trigger(env, [TriggerSpec("later", delay_until=due)] * 200)]
        expiring = [
            r.id for r, _ in b.engine.triggering.trigger(env, [TriggerSpec("later", delay_until=due, ttl=1.0)] * 50)
        ]
        lapsing = [r.id for r, _ in a.engine.triggering.trigger(env, [TriggerSpec("endless")] * 50)]
        assert {r.id for r in a.engine.execution.claim(env, "w1", version, 100)} == set(lapsing)
        # And 100 tokens that time out together (both schedulers lock them, in one order).
        tokens = [a.engine.tokens.create_token(env, TokenSpec(timeout=1.0))[0].id for _ in range(100)]

        def statuses() -> None:  # in a thread: the schedulers' loop stays free while it reads
            runs = a.store.runs.get_runs([*delayed, *expiring, *lapsing], env.id)
            assert Counter(runs[i].status for i in delayed) == {RunStatus.QUEUED: 200}
            assert Counter(runs[i].status for i in expiring) == {RunStatus.EXPIRED: 50}
            assert Counter(runs[i].status for i in lapsing) == {RunStatus.QUEUED: 50}
            assert Counter(b.engine.tokens.get_token(env, i).status for i in tokens) == {"TIMED_OUT": 100}

        async def all_due_applied() -> bool:
            await asyncio.to_thread(statuses)
            return True

        try:
            await eventually(all_due_applied, timeout=30, interval=0.2, what="the due changes")
        except AssertionError as exc:  # say what the schedulers said
            said = [logging.Formatter("%(name)s: %(message)s").format(r) for r in caplog.records]
            raise AssertionError(f"{exc}\nthe servers logged: {said}") from exc
        for run_id in lapsing:  # one lapsed attempt each, failed once, and the run queued again once
            attempts = a.store.runs.list_attempts(run_id)
            assert [(x.number, x.status) for x in attempts] == [(1, "FAILED")], run_id
            assert attempts[0].error is not None and attempts[0].error["name"] == "WorkerLost"

        claimed: dict[str, int] = {}

        async def all_claimed() -> bool:  # the lapsed ones once their retry backoff ends
            for server in (a, b):
                for run in server.engine.execution.claim(env, "w2", version, 1000):
                    # w2 never heartbeats either: a run is claimed again only after its lease lapsed.
                    assert run.attempt_count > claimed.get(run.id, 0), f"{run.id} claimed twice in one attempt"
                    claimed.setdefault(run.id, run.attempt_count)
            assert len(claimed) == 250
            return True

        await eventually(all_claimed, timeout=30, interval=0.2, what="every run to be claimed")
        assert claimed == dict.fromkeys(delayed, 1) | dict.fromkeys(lapsing, 2), "each run queued once"

    noise = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.name.startswith("hightide")]
    assert noise == [], "racing schedulers log nothing"


async def test_a_key_revoked_through_one_server_stops_working_on_the_other_at_once(pg_url: str) -> None:
    async with start_servers(pg_url, 2, EngineSettings()) as (a, b):
        env = find_environment(a.store, "dev")
        _version(a, env)
        # Cached for an hour: only the KEY_REVOKED change can make the other server forget it.
        here, there = KeyAuthenticator(a.store, ttl=3600), KeyAuthenticator(b.store, ttl=3600)
        secret = "ht_dev_" + uuid.uuid4().hex
        key_id = a.store.environments.add_api_key(env.id, hash_key(secret), secret[:12], time.time())
        other = create_key(a.store, env, time.time())
        for auth in (here, there):
            assert auth.authenticate(secret).id == env.id
            assert auth.authenticate(other).id == env.id
        await listening(a, b, env)

        assert a.store.environments.revoke_api_key(key_id, time.time())
        assert not a.store.environments.revoke_api_key(key_id, time.time()), "revoking twice is a no-op"

        def refuses(auth: KeyAuthenticator) -> bool:
            try:
                auth.authenticate(secret)
            except AuthenticationError:
                return True
            return False

        async def rejected_everywhere() -> bool:  # asserts: `eventually` tries again until they hold
            assert refuses(here), "the server the key was revoked through still takes it"
            assert refuses(there), "the other server still takes the revoked key"
            return True

        await eventually(rejected_everywhere, timeout=5.0, what="the revoked key to be refused by both servers")
        assert there.authenticate(other).id == env.id, "the environment's other keys still work"


def test_without_notifications_a_revoked_key_stops_working_within_the_cache_ttl(tmp_path: Path) -> None:
    # Two servers on one SQLite file do not hear each other: the key cache's ttl bounds the delay.
    a, b = open_store(str(tmp_path / "one.db")), open_store(str(tmp_path / "one.db"))
    try:
        a.migrate()
        bootstrap(a, time.time())
        env = find_environment(a, "dev")
        clock = ManualClock()
        there = KeyAuthenticator(b, ttl=10.0, clock=clock)
        secret = "ht_dev_" + uuid.uuid4().hex
        key_id = a.environments.add_api_key(env.id, hash_key(secret), secret[:12], time.time())
        assert there.authenticate(secret).id == env.id
        assert a.environments.revoke_api_key(key_id, time.time())
        clock.now += 9.9
        assert there.authenticate(secret).id == env.id  # still cached: the documented delay
        clock.now += 0.2
        with pytest.raises(AuthenticationError, match="invalid secret key"):
            there.authenticate(secret)
    finally:
        a.close()
        b.close()


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
