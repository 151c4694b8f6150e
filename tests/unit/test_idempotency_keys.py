"""``idempotency_keys.create``: stable keys, scoped to the run, the attempt or nothing."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from hightide.core.protocol import Execution
from hightide.errors import ValidationError
from hightide.sdk import context as context_module
from hightide.sdk.context import Context
from hightide.sdk.idempotency import idempotency_keys


@contextmanager
def inside(run_id: str = "run_01parent", attempt: int = 1, **execution: Any) -> Iterator[Context]:
    """As if executing ``run_id``'s ``attempt`` (the runner sets the context the same way)."""
    ctx = Context.from_execution(Execution(run_id=run_id, attempt=attempt, task_id="checkout", **execution))
    token = context_module.current.set(ctx)
    try:
        yield ctx
    finally:
        context_module.current.reset(token)


async def test_a_key_is_stable_and_depends_on_what_it_is_made_of() -> None:
    key = await idempotency_keys.create("order-7")
    assert key == await idempotency_keys.create("order-7")
    assert len(key) == 64 and int(key, 16) >= 0  # a hex SHA-256: fits any key column
    assert key != await idempotency_keys.create("order-8")
    assert await idempotency_keys.create(["order", "7"]) == await idempotency_keys.create(("order", "7"))
    assert await idempotency_keys.create(["order", "7"]) != await idempotency_keys.create(["7", "order"])
    assert await idempotency_keys.create(["order", "7"]) != await idempotency_keys.create("order7")


async def test_outside_a_task_every_scope_is_global() -> None:
    assert context_module.current_context() is None
    keys = {await idempotency_keys.create("order-7", scope=scope) for scope in ("run", "attempt", "global")}
    assert len(keys) == 1
    # The same key as the global one made inside a task.
    with inside():
        assert await idempotency_keys.create("order-7", scope="global") in keys


async def test_inside_a_task_the_scopes_differ() -> None:
    with inside("run_01parent", attempt=1):
        run = await idempotency_keys.create("order-7")
        assert run == await idempotency_keys.create("order-7", scope="run")  # the default
        attempt = await idempotency_keys.create("order-7", scope="attempt")
        glob = await idempotency_keys.create("order-7", scope="global")
    assert len({run, attempt, glob}) == 3
    assert glob == await idempotency_keys.create("order-7")  # global: what any caller gets


async def test_a_run_scoped_key_survives_a_retry_and_an_attempt_scoped_one_does_not() -> None:
    keys: dict[tuple[str, int], tuple[str, str]] = {}
    for run_id in ("run_01a", "run_01b"):
        for attempt in (1, 2):
            with inside(run_id, attempt=attempt):
                keys[run_id, attempt] = (
                    await idempotency_keys.create(["order", "7"]),
                    await idempotency_keys.create(["order", "7"], scope="attempt"),
                )

    # scope "run": one key per run, whatever the attempt (a retried parent finds its child again).
    assert keys["run_01a", 1][0] == keys["run_01a", 2][0]
    assert keys["run_01a", 1][0] != keys["run_01b", 1][0]
    # scope "attempt": one key per attempt of each run.
    attempt_keys = {k[1] for k in keys.values()}
    assert len(attempt_keys) == 4
    assert attempt_keys.isdisjoint(k[0] for k in keys.values())


async def test_the_key_depends_on_the_run_not_on_the_rest_of_the_context() -> None:
    with inside("run_01a", tags=["x"], metadata={"m": 1}, queue="q1", version="v1"):
        first = await idempotency_keys.create("order-7")
    with inside("run_01a", environment="prod", parent_run_id="run_01p", version="v2"):
        second = await idempotency_keys.create("order-7")
    assert first == second


async def test_the_context_is_read_when_the_key_is_made() -> None:
    with inside("run_01a"):
        inner = await idempotency_keys.create("k")
    outer = await idempotency_keys.create("k")
    assert inner != outer
    assert context_module.current_context() is None


async def test_the_key_format_is_a_hash_of_its_parts() -> None:
    """Pinned: keys already stored with live runs must keep matching after an upgrade."""

    def sha(*parts: str) -> str:
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()

    with inside("run_01a", attempt=3):
        assert await idempotency_keys.create(["a", "b"]) == sha("a", "b", "run", "run_01a")
        assert await idempotency_keys.create("a", scope="attempt") == sha("a", "attempt", "run_01a", "3")
        assert await idempotency_keys.create("a", scope="global") == sha("a")


@pytest.mark.parametrize("scope", ["Run", "task", "", "parent", None])
async def test_an_unknown_scope_is_refused(scope: Any) -> None:
    with pytest.raises(ValidationError, match="scope must be one of run, attempt, global"):
        await idempotency_keys.create("order-7", scope=scope)
    with inside(), pytest.raises(ValidationError):
        await idempotency_keys.create("order-7", scope=scope)


@pytest.mark.parametrize("key", ["", [], (), ["order", ""], ["order", 7], [None]])
async def test_an_empty_or_non_string_key_is_refused(key: Any) -> None:
    with pytest.raises(ValidationError, match="non-empty string"):
        await idempotency_keys.create(key)
    with inside(), pytest.raises(ValidationError, match="non-empty string"):
        await idempotency_keys.create(key, scope="attempt")
