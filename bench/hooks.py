"""The overhead of hooks and middleware per run, in-process: the same no-op task executed the way
the runner executes an attempt (its hook state and locals set, ``Task.execute``), bare and with two
middleware (one global, one the task's), ``locals`` set and read, and four hooks (on_start_attempt,
on_success, on_complete sync and async, one global). The target: under 0.2 ms per run.

    python bench/hooks.py [--runs 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from hightide import locals, task, tasks
from hightide.core.protocol import Execution
from hightide.sdk import hooks as run_hooks
from hightide.sdk import locals as run_locals
from hightide.sdk.context import Context

db = locals.create("db")


@task(id="bare")
async def bare(payload: dict) -> int:
    return payload["n"]


async def task_mw(payload: Any, ctx: Any, next: Any) -> Any:
    locals.get(db)
    return await next()


async def on_complete(result: Any) -> None:
    pass


@task(
    id="hooked",
    middleware=[task_mw],
    on_start_attempt=lambda ctx: None,
    on_success=lambda output: None,
    on_complete=on_complete,
)
async def hooked(payload: dict) -> int:
    return payload["n"] + len(locals.get(db))


async def run_many(t: Any, runs: int) -> float:
    execution = Execution(run_id="run_1", task_id=t.id, attempt=1, max_attempts=3, payload={"n": 1})
    ctx = Context.from_execution(execution)
    started = time.perf_counter()
    for _ in range(runs):
        state = run_hooks.Attempt(t.hooks, execution.payload, ctx)
        token, local = run_hooks.current.set(state), run_locals.start_run()
        try:
            await t.execute(execution.payload, ctx)
        finally:
            run_locals.end_run(local)
            run_hooks.current.reset(token)
    return (time.perf_counter() - started) / runs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    async def bench() -> dict[str, float]:
        bare_times, hooked_times = [], []
        await run_many(bare, 1000)  # warm up (bare: no global middleware yet)
        for _ in range(args.rounds):
            bare_times.append(await run_many(bare, args.runs))

        # The global ones (as trigger/init.py registers them) apply to the hooked runs only.
        @tasks.middleware
        async def global_mw(payload: Any, ctx: Any, next: Any) -> Any:
            locals.set(db, "connection")
            return await next()

        tasks.on_success(lambda ctx: None)
        await run_many(hooked, 1000)
        for _ in range(args.rounds):
            hooked_times.append(await run_many(hooked, args.runs))
        b, h = statistics.median(bare_times), statistics.median(hooked_times)
        return {"bare_ms": b * 1e3, "hooked_ms": h * 1e3, "overhead_ms": (h - b) * 1e3}

    print(json.dumps({k: round(v, 4) for k, v in asyncio.run(bench()).items()}))


if __name__ == "__main__":
    main()
