"""Hooks, middleware and locals around a task, as the runner calls them: one composed chain
(global middleware, the task's middleware, the hooks, the function), arguments passed by name."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from hightide import RetryDecision, locals, task, tasks
from hightide.core.protocol import Execution
from hightide.core.retry import RetryPolicy, decide_failure
from hightide.errors import AbortTaskRunError, ConfigError
from hightide.sdk import hooks as run_hooks
from hightide.sdk import locals as run_locals
from hightide.sdk.context import Context
from hightide.sdk.middleware import compose
from hightide.sdk.task import registry


@pytest.fixture(autouse=True)
def _clean():
    before, saved = dict(registry), run_hooks.global_hooks
    run_hooks.global_hooks = run_hooks.HookSet()
    yield
    run_hooks.global_hooks = saved
    registry.clear()
    registry.update(before)


async def attempt(t: Any, payload: Any = None, number: int = 1, max_attempts: int = 3) -> tuple[Any, Any, Any]:
    """One attempt of ``t`` as the runner makes it: (the attempt's hook state, output, error)."""
    execution = Execution(run_id="run_1", task_id=t.id, attempt=number, max_attempts=max_attempts, payload=payload)
    ctx = Context.from_execution(execution)
    state = run_hooks.Attempt(t.hooks, payload, ctx)
    token, local = run_hooks.current.set(state), run_locals.start_run()
    try:
        return state, await t.execute(payload, ctx), None
    except Exception as exc:
        return state, None, exc
    finally:
        run_locals.end_run(local)
        run_hooks.current.reset(token)


def test_compose_runs_middleware_outside_in() -> None:
    seen: list[str] = []

    def mw(name: str) -> Any:
        async def layer(payload: Any, ctx: Any, next: Any) -> Any:
            seen.append(f"{name} before")
            result = await next()
            seen.append(f"{name} after")
            return f"{name}({result})"

        return layer

    async def handler(payload: Any, ctx: Any) -> Any:
        seen.append("run")
        return payload

    chain = compose([mw("a"), mw("b")], handler)
    assert asyncio.run(chain("x", None)) == "a(b(x))"
    assert seen == ["a before", "b before", "run", "b after", "a after"]


def test_next_twice_is_an_error() -> None:
    async def twice(payload: Any, ctx: Any, next: Any) -> Any:
        await next()
        return await next()

    async def handler(payload: Any, ctx: Any) -> Any:
        return 1

    with pytest.raises(RuntimeError, match="next\\(\\) twice"):
        asyncio.run(compose([twice], handler)(None, None))


def test_hooks_get_only_the_arguments_they_name() -> None:
    got: dict[str, Any] = {}

    def on_success(output: Any) -> None:
        got["success"] = output

    async def on_complete(result: Any, ctx: Any, **rest: Any) -> None:
        got["complete"] = (result.ok, result.output, ctx.run.id, sorted(rest))

    def on_start_attempt() -> None:
        got["start"] = True

    @task(id="hooked", on_success=on_success, on_complete=on_complete, on_start_attempt=on_start_attempt)
    async def hooked(payload: dict) -> int:
        return payload["n"] * 2

    _, output, error = asyncio.run(attempt(hooked, {"n": 21}))
    assert (output, error) == (42, None)
    assert got == {"start": True, "success": 42, "complete": (True, 42, "run_1", ["payload"])}


def test_a_hook_naming_an_unknown_argument_fails_at_import() -> None:
    def on_success(outcome: Any) -> None: ...

    with pytest.raises(ConfigError, match=r"on_success hook .* takes 'outcome'"):

        @task(id="bad-hook", on_success=on_success)
        async def bad(payload: dict) -> None: ...

    with pytest.raises(ConfigError, match="unknown option"):
        task(id="bad-option", on_start=lambda: None)(lambda payload: None)  # type: ignore[call-overload]

    with pytest.raises(ConfigError, match=r"catch_error hook .* takes 'output'"):
        tasks.catch_error(lambda output: None)

    with pytest.raises(ConfigError, match="middleware must be an `async def"):
        tasks.middleware(lambda payload, ctx, next: None)


def test_on_failure_only_after_the_final_attempt() -> None:
    failures: list[tuple[int, str]] = []

    def on_failure(ctx: Any, error: BaseException) -> None:
        failures.append((ctx.attempt.number, str(error)))

    @task(id="flaky", on_failure=on_failure)
    async def flaky(payload: dict) -> None:
        raise RuntimeError("boom")

    asyncio.run(attempt(flaky, {}, number=1, max_attempts=2))
    assert failures == []  # another attempt follows
    asyncio.run(attempt(flaky, {}, number=2, max_attempts=2))
    assert failures == [(2, "boom")]


def test_abort_is_final_at_once() -> None:
    completed: list[Any] = []

    @task(id="aborts", on_complete=lambda result: completed.append(result))
    async def aborts(payload: dict) -> None:
        raise AbortTaskRunError("no")

    asyncio.run(attempt(aborts, {}, number=1, max_attempts=5))
    assert [(r.ok, type(r.error).__name__) for r in completed] == [(False, "AbortTaskRunError")]


def test_an_error_in_on_success_is_logged_and_the_run_still_succeeds(caplog: pytest.LogCaptureFixture) -> None:
    def on_success() -> None:
        raise ValueError("hook broke")

    later: list[str] = []

    @task(id="ok-run", on_success=on_success, on_complete=lambda: later.append("complete"))
    async def ok_run(payload: dict) -> str:
        return "done"

    with caplog.at_level(logging.INFO, logger="hightide.task"):
        _, output, error = asyncio.run(attempt(ok_run, {}))
    assert (output, error) == ("done", None)
    assert later == ["complete"]
    assert "on_success hook" in caplog.text and "hook broke" in caplog.text


def test_catch_error_decides_the_retry() -> None:
    seen: list[Any] = []

    def catch_error(error: BaseException, retry: run_hooks.RetryInfo) -> RetryDecision | None:
        seen.append(retry)
        if "permanent" in str(error):
            return RetryDecision.skip()
        if "later" in str(error):
            return RetryDecision.after("30s")
        return None

    failed: list[str] = []

    @task(id="decides", catch_error=catch_error, on_failure=lambda error: failed.append(str(error)))
    async def decides(payload: dict) -> None:
        raise RuntimeError(payload["why"])

    state, _, _ = asyncio.run(attempt(decides, {"why": "permanent"}, number=1, max_attempts=3))
    assert state.retry == RetryDecision.skip() and failed == ["permanent"]  # skip: final now
    state, _, _ = asyncio.run(attempt(decides, {"why": "later"}, number=1, max_attempts=3))
    assert state.retry == RetryDecision(True, delay=30.0) and failed == ["permanent"]
    state, _, _ = asyncio.run(attempt(decides, {"why": "other"}, number=1, max_attempts=3))
    assert state.retry is None
    assert [r.will_retry for r in seen] == [True, True, True]


def test_the_engine_applies_a_retry_decision() -> None:
    policy = RetryPolicy(min_timeout=1, randomize=False)
    assert not decide_failure("error", 1, 3, policy, override=RetryDecision.skip()).retry
    assert decide_failure("error", 1, 3, policy, override=RetryDecision.after(30)).delay == 30
    at = RetryDecision.at(datetime(2030, 1, 1, tzinfo=UTC))
    assert decide_failure("error", 1, 3, policy, override=at, now=at.resume_at - 90).delay == 90  # type: ignore[operator]
    # A decision never adds attempts, nor retries what is never retried.
    assert not decide_failure("error", 3, 3, policy, override=RetryDecision.after(1)).retry
    assert not decide_failure("abort", 1, 3, policy, override=RetryDecision.after(1)).retry


def test_middleware_global_outside_task_and_locals_shared() -> None:
    order: list[str] = []
    db = locals.create("db")

    @tasks.middleware
    async def outer(payload: Any, ctx: Any, next: Any) -> Any:
        order.append("global")
        locals.set(db, {"opened_by": "global"})
        return await next()

    async def inner(payload: Any, ctx: Any, next: Any) -> Any:
        order.append(f"task sees {locals.get(db)['opened_by']}")
        result = await next()
        order.append("task after")
        return {**result, "wrapped": True}

    def on_success(output: Any) -> None:
        order.append(f"on_success sees {locals.get(db)['opened_by']}, output {output}")

    @task(id="layered", middleware=[inner], on_success=on_success)
    async def layered(payload: dict) -> dict:
        order.append("run")
        return {"db": locals.get(db)["opened_by"]}

    _, output, error = asyncio.run(attempt(layered, {}))
    assert error is None and output == {"db": "global", "wrapped": True}
    assert order == [
        "global",
        "task sees global",
        "run",
        "on_success sees global, output {'db': 'global'}",
        "task after",
    ]
    # One value per run: the next run (with no middleware setting it) starts empty.
    run_hooks.global_hooks = run_hooks.HookSet()
    _, _, error = asyncio.run(attempt(task(id="reads")(lambda payload: locals.get(db)), {}))
    assert isinstance(error, KeyError)
    assert locals.get(db, None) is None


def test_global_hooks_run_before_the_task_hooks_and_a_hook_added_later_is_used() -> None:
    order: list[str] = []

    @task(id="both", on_success=lambda: order.append("task"))
    async def both(payload: dict) -> None: ...

    asyncio.run(attempt(both, {}))
    tasks.on_success(lambda ctx: order.append(f"global {ctx.task.id}"))
    asyncio.run(attempt(both, {}))
    assert order == ["task", "global both", "task"]


def test_async_hooks_and_a_list_of_hooks() -> None:
    seen: list[str] = []

    async def first(output: Any) -> None:
        await asyncio.sleep(0)
        seen.append(f"first {output}")

    @task(id="many", on_success=[first, lambda payload: seen.append(f"second {payload}")])
    async def many(payload: int) -> int:
        return payload + 1

    asyncio.run(attempt(many, 1))
    assert seen == ["first 2", "second 1"]


def test_journal_frontier() -> None:
    from hightide.sdk.journal import _last_per_path

    assert _last_per_path({s: {} for s in ("0", "1", "2", "t0/0", "t1/0", "t1/1")}) == {"2", "t0/0", "t1/1"}


def test_each_task_folders_init_module_is_imported_first(tmp_path: Any) -> None:
    from hightide.worker.loader import task_files

    for rel in ("trigger/a.py", "trigger/init.py", "trigger/sub/init.py", "jobs/b.py", "jobs/init.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    files = [str(p.relative_to(tmp_path)) for p in task_files(tmp_path, ("trigger", "jobs"))]
    assert files == ["trigger/init.py", "jobs/init.py", "trigger/a.py", "trigger/sub/init.py", "jobs/b.py"]
