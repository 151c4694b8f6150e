"""The parts of realtime that need no server: reading an event stream, and a subscription that
keeps the latest state of each run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

from hightide.core.states import RunStatus
from hightide.engine.realtime import Subscription, Update
from hightide.sdk.realtime import Reconnect, ServerEvent, parse_events
from hightide.store.live import RunView
from hightide.store.records import Run


async def _lines(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line


async def test_events_are_read_as_the_standard_reads_them() -> None:
    lines = _lines(
        "retry: 1000",
        "",
        ": ping",
        "",
        "id: a1",
        "event: run",
        'data: {"x":',
        "data:1}",
        "",
        "data: no name",
        "",
        "event: end",
        "data: {}",
        "",
        "data: never finished",
    )
    events = [e async for e in parse_events(lines)]
    assert events == [
        ServerEvent("run", '{"x":\n1}', "a1"),
        ServerEvent("message", "no name", "a1"),  # the last id stays the last id
        ServerEvent("end", "{}", "a1"),
    ]


def _run(run_id: str, status: RunStatus, updated_at: float, env: str = "env_1") -> Run:
    return Run(
        id=run_id, environment_id=env, task_id="t", queue="task/t", status=status, payload=None, output=None,
        error=None, tags=[], metadata={}, idempotency_key=None, idempotency_key_expires_at=None,
        concurrency_key=None, priority=0.0, max_attempts=1, retry={}, max_duration=None, attempt_count=0,
        delay_until=None, ttl_expires_at=None, available_at=0.0, lease_expires_at=None, worker_id=None,
        version=None, parent_run_id=None, root_run_id=None, created_at=0.0, updated_at=updated_at,
        started_at=None, finished_at=None,
    )  # fmt: skip


def _update(run: Run) -> Update:
    return Update(RunView(run), at=run.updated_at)


async def test_a_subscription_keeps_the_latest_state_of_each_run_in_change_order() -> None:
    sub = Subscription("env_1", tag="t")
    a = _run("run_a", RunStatus.QUEUED, 1.0)
    sub.offer(_update(a))
    sub.offer(_update(_run("run_b", RunStatus.QUEUED, 2.0)))
    sub.offer(_update(replace(a, status=RunStatus.EXECUTING, updated_at=3.0)))
    sub.offer(_update(replace(a, status=RunStatus.QUEUED, updated_at=1.5)))  # a stale read: dropped
    sub.offer(_update(_run("run_c", RunStatus.QUEUED, 4.0, env="env_2")))  # another environment's
    taken = await sub.take(1.0)
    assert [(u.run_id, u.view.run.status) for u in taken] == [
        ("run_b", RunStatus.QUEUED),
        ("run_a", RunStatus.EXECUTING),
    ]
    assert await sub.take(0.05) == []


async def test_an_environment_wide_subscription_holds_a_bounded_number_of_runs() -> None:
    sub = Subscription("env_1", max_pending=3)
    for n in range(3):
        sub.offer(_update(_run(f"run_{n}", RunStatus.QUEUED, 1.0 + n)))
    sub.offer(_update(_run("run_0", RunStatus.EXECUTING, 5.0)))  # one state per run: still three runs
    assert not sub.overflowed()
    sub.offer(_update(_run("run_3", RunStatus.QUEUED, 6.0)))  # a fourth run: too many, all dropped
    assert await asyncio.wait_for(sub.take(30.0), 1.0) == []  # wakes its reader, which asks why
    assert sub.overflowed() and not sub.overflowed()  # said once
    sub.offer(_update(_run("run_4", RunStatus.QUEUED, 7.0)))  # later changes are held again
    assert [u.run_id for u in await sub.take(1.0)] == ["run_4"]
    tagged = Subscription("env_1", tag="t", max_pending=3)  # a tag's subscription is not bounded
    for n in range(5):
        tagged.offer(_update(_run(f"run_{n}", RunStatus.QUEUED, 1.0 + n)))
    assert len(await tagged.take(1.0)) == 5 and not tagged.overflowed()


async def test_closing_a_subscription_wakes_its_reader() -> None:
    sub = Subscription("env_1", run_id="run_a")
    waiting = asyncio.create_task(sub.take(30.0))
    await asyncio.sleep(0)
    sub.close()
    assert await asyncio.wait_for(waiting, 1.0) == []


def test_an_update_is_rendered_once_per_base_url() -> None:
    calls: list[str] = []

    def render(view: RunView, base: str) -> str:
        calls.append(base)
        return f'{{"id":"{view.run.id}","base":"{base}"}}'

    update = _update(_run("run_a", RunStatus.QUEUED, 1.0))
    first = update.encoded(render, "http://a")
    assert update.encoded(render, "http://a") == first
    assert update.encoded(render, "http://b")[1] != first[1]
    assert calls == ["http://a", "http://b"]


def test_reconnects_back_off_up_to_a_bound() -> None:
    policy = Reconnect(first=0.2, most=5.0)
    assert [policy.delay(n) <= bound for n, bound in ((1, 0.2), (2, 0.4), (3, 0.8), (10, 5.0), (50, 5.0))] == [True] * 5
    assert all(policy.delay(n) >= 0.1 for n in range(1, 20))
