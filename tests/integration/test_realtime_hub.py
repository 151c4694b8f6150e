"""The realtime hub of a server (SQLite and PostgreSQL): fed by the store's changes, it reads each
batch once whatever the number of subscribers, re-reads what is watched when a batch is too large
to list, and hears, on PostgreSQL, the changes another server makes."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from hightide.core.states import RunStatus
from hightide.engine import realtime
from hightide.engine.environments import bootstrap, find_environment
from hightide.engine.options import TriggerSpec
from hightide.engine.realtime import Subscription, Update
from hightide.engine.runs import EngineSettings, RunEngine
from hightide.store import Store, open_store
from hightide.store.changes import Change, ChangeKind
from hightide.store.records import Environment, Version
from tests.integration.test_multi_server import listening, start_servers
from tests.integration.test_multi_server import pg_url as pg_url
from tests.support import eventually, fresh_postgres_database

TASKS = {"tasks": [{"id": "work"}, {"id": "later"}]}  # "later": what `listening` triggers


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "hub.db")
        return
    with fresh_postgres_database("hightide_hub") as pg:
        yield pg


@contextlib.asynccontextmanager
async def serving(url: str) -> AsyncIterator[tuple[Store, RunEngine]]:
    """A server's store and engine, attached to this loop; its hub polls only every 60 s, so that
    what a test sees came from the change events."""
    store = open_store(url)
    store.migrate()
    bootstrap(store, time.time(), 1000)  # room for 300 runs executing at once
    engine = RunEngine(store)
    engine.realtime.poll_interval = 60.0
    engine.attach(asyncio.get_running_loop())
    store.start()
    try:
        yield store, engine
    finally:
        engine.detach()
        store.close()


class HubStatements:
    """Counts the SQL statements run off the main thread: the hub's reads (the test itself, and
    the engine calls it makes, run on the main thread)."""

    def __init__(self, store: Store) -> None:
        self.count = 0
        self._store = store
        event.listen(store.engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            self.count += 1

    def close(self) -> None:
        event.remove(self._store.engine, "before_cursor_execute", self._seen)


def _version(engine: RunEngine, env: Environment) -> Version:
    return engine.triggering.register_version(env, TASKS, worker_id="w1")


def _trigger(engine: RunEngine, env: Environment, count: int, tags: tuple[str, ...] = ()) -> list[str]:
    specs = [TriggerSpec(task_id="work", tags=tags)] * count
    return [run.id for run, _ in engine.triggering.trigger(env, specs)]


async def _states(sub: Subscription, want: int, timeout: float = 10.0) -> dict[str, Update]:
    """The latest state of each run offered to ``sub`` until ``want`` runs are EXECUTING."""
    latest: dict[str, Update] = {}
    async with asyncio.timeout(timeout):
        while sum(u.view.run.status is RunStatus.EXECUTING for u in latest.values()) < want:
            for update in await sub.take(1.0):
                latest[update.run_id] = update
    return latest


async def test_many_subscribers_cost_the_same_reads_as_one(url: str) -> None:
    async with serving(url) as (store, engine):
        env = find_environment(store, "dev")
        version = _version(engine, env)
        hub = engine.realtime
        costs = []
        for per_run, per_tag in ((1, 0), (10, 100)):  # 1 subscriber, then 200 (100 by run, 100 by tag)
            tag = f"t-{uuid.uuid4().hex[:6]}"
            ids = _trigger(engine, env, 20, (tag,))
            subs = [hub.subscribe(env.id, run_id=i) for i in ids[:per_run] for _ in range(10 if per_run > 1 else 1)]
            subs += [hub.subscribe(env.id, tag=tag) for _ in range(per_tag)]
            await asyncio.sleep(0.2)  # nothing pending any more
            counter, reads = HubStatements(store), hub.reads
            claimed = engine.execution.claim(env, "w1", version, 20)  # one transaction: one batch
            assert len(claimed) == 20
            try:
                for sub in subs:
                    states = await _states(sub, 20 if sub.tag else 1)
                    assert all(len(u.view.attempts) == 1 for u in states.values())
                costs.append((counter.count, hub.reads - reads))
            finally:
                counter.close()
                for sub in subs:
                    hub.unsubscribe(sub)
        one, many = costs
        assert many == one, f"1 subscriber: {one} (statements, reads); 200 subscribers: {many}"
        assert one[1] == 1 and one[0] <= 3, one  # one read: the runs and their attempts


async def test_a_batch_too_large_to_list_still_reaches_subscribers(url: str) -> None:
    async with serving(url) as (store, engine):
        env = find_environment(store, "dev")
        version = _version(engine, env)
        hub = engine.realtime
        tag = "bulk"
        kinds: list[ChangeKind] = []
        store.add_listener(lambda changes: kinds.extend(c.kind for c in changes))
        by_tag = hub.subscribe(env.id, tag=tag)
        ids = _trigger(engine, env, 300, (tag,))  # 300 runs in one transaction
        by_run = hub.subscribe(env.id, run_id=ids[-1])
        assert ChangeKind.SEVERAL in kinds
        seen: dict[str, Update] = {}
        async with asyncio.timeout(10):
            while len(seen) < 300:
                seen.update({u.run_id: u for u in await by_tag.take(1.0)})
        assert set(seen) == set(ids)
        kinds.clear()
        claimed = []
        for _ in range(3):  # the last run's claim among them: each claim is one batch of 100
            claimed += engine.execution.claim(env, "w1", version, 100)
        assert ids[-1] in {r.id for r in claimed}
        assert ChangeKind.SEVERAL in kinds
        latest = await _states(by_run, 1)
        assert latest[ids[-1]].view.run.status is RunStatus.EXECUTING


async def test_any_change_of_a_run_reaches_its_subscribers_whatever_its_kind(url: str) -> None:
    async with serving(url) as (store, engine):
        env = find_environment(store, "dev")
        _version(engine, env)
        [run_id] = _trigger(engine, env, 1)
        sub = engine.realtime.subscribe(env.id, run_id=run_id)
        assert await sub.take(0.3) == []  # nothing changed yet
        # A change of a kind the hub has no special case for (metadata, tags, ...): it reads the run.
        store.seam.dispatch([Change(env.id, run_id, None, ChangeKind.READY)])
        [update] = await sub.take(5.0)
        assert update.view.run.id == run_id and update.view.run.status is RunStatus.QUEUED
        cancelled = await asyncio.to_thread(engine.control.cancel, env, run_id)
        updates = await sub.take(5.0)
        assert [u.view.run.status for u in updates] == [cancelled.status]


async def test_closing_the_hub_ends_every_subscription(url: str) -> None:
    async with serving(url) as (store, engine):
        env = find_environment(store, "dev")
        subs = [engine.realtime.subscribe(env.id, run_id=f"run_{i}") for i in range(3)]
        waiting = [asyncio.create_task(s.take(30.0)) for s in subs]
        engine.stop_polling()
        assert await asyncio.wait_for(asyncio.gather(*waiting), 2.0) == [[], [], []]
        assert all(s.closed for s in subs)
        assert engine.realtime.subscribe(env.id, run_id="late").closed  # after shutdown: closed at once


async def test_a_change_through_one_server_reaches_a_subscriber_on_another(pg_url: str) -> None:
    async with start_servers(pg_url, 2, EngineSettings()) as (a, b):
        b.engine.realtime.poll_interval = 60.0  # only the notification can be quick
        env = find_environment(a.store, "dev")
        version = _version(a.engine, env)
        await listening(a, b, env)
        tag = "across"
        [run_id] = _trigger(a.engine, env, 1, (tag,))
        by_run = b.engine.realtime.subscribe(env.id, run_id=run_id)
        by_tag = b.engine.realtime.subscribe(env.id, tag=tag)
        assert [r.id for r in a.engine.execution.claim(env, "w1", version, 10)] == [run_id]
        started = time.monotonic()
        await _states(by_run, 1, timeout=5)
        await _states(by_tag, 1, timeout=5)
        assert time.monotonic() - started < 5
        [other] = _trigger(a.engine, env, 1, (tag,))  # a new run of the tag: B's tag subscriber sees it

        async def new_run_seen() -> bool:
            return any(u.run_id == other for u in await by_tag.take(0.5))

        await eventually(new_run_seen, timeout=5, what="the new run on the other server")


async def test_an_environment_subscriber_sees_every_run_of_it_and_no_other(url: str) -> None:
    async with serving(url) as (store, engine):
        env, other = find_environment(store, "dev"), find_environment(store, "prod")
        version = _version(engine, env)
        _version(engine, other)
        hub = engine.realtime
        listing = hub.subscribe(env.id)  # neither run_id nor tag: the whole environment
        by_run = hub.subscribe(env.id, run_id="run_unrelated")
        assert hub.subscriptions == 2
        counter, reads = HubStatements(store), hub.reads
        try:
            ids = _trigger(engine, env, 3, ("a",)) + _trigger(engine, env, 2)  # with and without tags
            _trigger(engine, other, 2)  # another environment's runs never reach it
            seen: dict[str, Update] = {}
            async with asyncio.timeout(10):
                while len(seen) < 5:
                    seen.update({u.run_id: u for u in await listing.take(1.0)})
            assert set(seen) == set(ids)
            assert all(u.view.run.status is RunStatus.QUEUED for u in seen.values())
            assert await by_run.take(0.2) == []
            assert (hub.reads - reads) <= 2 and counter.count <= 6  # a read per batch, not per run
            # Status changes reach it too, and a subscriber by run is unaffected.
            assert len(engine.execution.claim(env, "w1", version, 5)) == 5
            latest = await _states(listing, 5)
            assert set(latest) == set(ids)
        finally:
            counter.close()
        hub.unsubscribe(listing)
        hub.unsubscribe(by_run)
        assert hub.subscriptions == 0


async def test_after_a_batch_too_large_to_list_an_environment_subscriber_gets_new_and_followed_runs(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(realtime, "RESUME_MARGIN", 0.0)  # runs created before it subscribed: found by `follow` only
    async with serving(url) as (store, engine):
        env = find_environment(store, "dev")
        version = _version(engine, env)
        hub = engine.realtime
        [shown] = _trigger(engine, env, 1)  # a row its page shows, read before it subscribed
        listing = hub.subscribe(env.id)
        hub.follow(listing, [shown])
        kinds: list[ChangeKind] = []
        store.add_listener(lambda changes: kinds.extend(c.kind for c in changes))
        ids = _trigger(engine, env, 300)  # one transaction: one SEVERAL, no ids
        assert ChangeKind.SEVERAL in kinds
        seen: dict[str, Update] = {}
        async with asyncio.timeout(10):
            while len(seen) < 300:
                seen.update({u.run_id: u for u in await listing.take(1.0)})
        assert set(ids) <= set(seen)
        kinds.clear()
        claimed = engine.execution.claim(env, "w1", version, 100)  # the oldest first: ``shown`` among them
        assert shown in {r.id for r in claimed} and ChangeKind.SEVERAL in kinds
        latest = await _states(listing, 1)
        while shown not in latest:
            latest.update({u.run_id: u for u in await listing.take(1.0)})
        assert latest[shown].view.run.status is RunStatus.EXECUTING
        hub.unsubscribe(listing)
