"""Small builders for the store contract suite: an environment with registered tasks, and runs."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hightide.core.ids import new_id
from hightide.core.states import RunStatus
from hightide.store import Store
from hightide.store.records import NewRun, Run, Waitpoint

NOW = 1_800_000_000.0
"""A fixed clock: the store never reads the time itself, so the tests pass it in."""

TASKS = [
    {"id": "email", "queue": {"name": "task/email"}},
    {"id": "resize", "queue": {"name": "task/resize"}},
]


def make_env(
    store: Store, slug: str = "dev", *, concurrency_limit: int = 1000, tasks: list[dict[str, Any]] | None = None
) -> str:
    """A project ``acme`` with environment ``slug`` whose current version defines ``tasks``."""
    project_id = store.environments.ensure_project("acme", NOW)
    env_id = store.environments.ensure_environment(project_id, slug, "development", concurrency_limit, NOW)
    store.environments.register_version(env_id, "20270115", {"tasks": tasks if tasks is not None else TASKS}, NOW)
    return env_id


def new_run(
    env_id: str,
    task_id: str = "email",
    *,
    created_at: float = NOW,
    queue: str | None = None,
    status: RunStatus = RunStatus.QUEUED,
    available_at: float | None = None,
    **fields: Any,
) -> NewRun:
    """A run as the engine would build it; ``fields`` override any other ``NewRun`` field."""
    run = NewRun(
        id=new_id("run", created_at),
        environment_id=env_id,
        task_id=task_id,
        queue=queue or f"task/{task_id}",
        status=status,
        payload={"to": "ada@example.com"},
        tags=[],
        metadata={},
        idempotency_key=None,
        idempotency_key_expires_at=None,
        concurrency_key=None,
        priority=0.0,
        max_attempts=3,
        retry={"max_attempts": 3},
        max_duration=None,
        delay_until=None,
        ttl_expires_at=None,
        available_at=created_at if available_at is None else available_at,
        parent_run_id=None,
        root_run_id=None,
        created_at=created_at,
    )
    return replace(run, **fields)


def insert(store: Store, *runs: NewRun, now: float = NOW) -> list[Run]:
    """Insert ``runs`` (none of them cached) and return them as stored."""
    results = store.runs.insert_runs(list(runs), now)
    assert [cached for _, cached in results] == [False] * len(runs)
    return [run for run, _ in results]


def finish(store: Store, run: Run, now: float = NOW) -> Run:
    """Complete a claimed run, freeing its concurrency slot."""
    done = store.runs.update_run(
        run.id,
        expect_status="EXECUTING",
        expect_attempt=run.attempt_count,
        values={"status": "COMPLETED", "finished_at": now, "lease_expires_at": None},
        now=now,
    )
    assert done is not None
    return done


def pause_queue(store: Store, env_id: str, name: str) -> None:
    store.queues.set_paused(env_id, name, True, NOW)


# -- durable execution ------------------------------------------------------------------------------


def start_run(
    store: Store, env_id: str, task_id: str = "email", *, worker_id: str = "w1", now: float = NOW, **fields: Any
) -> Run:
    """Insert a run of ``task_id`` and claim it (attempt 1, EXECUTING for ``worker_id``). It is made
    available long before ``now``, so that it is the one claimed even when others wait."""
    run = insert(store, new_run(env_id, task_id, created_at=now, available_at=now - 10_000, **fields), now=now)[0]
    claimed = store.claims.claim_runs(
        env_id, [task_id], worker_id=worker_id, version="20270115.1", limit=1, lease_seconds=30.0, now=now
    )
    assert [c.id for c in claimed] == [run.id]
    return claimed[0]


def new_waitpoint(env_id: str, kind: str = "TOKEN", *, created_at: float = NOW, **fields: Any) -> Waitpoint:
    """A WAITING waitpoint as the engine would build it; ``fields`` override any other field."""
    wp = Waitpoint(id=new_id("waitpoint", created_at), environment_id=env_id, kind=kind, status="WAITING")
    return replace(wp, created_at=created_at, **fields)
