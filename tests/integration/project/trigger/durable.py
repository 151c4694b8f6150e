"""Tasks that wait: subtasks, timers, tokens and steps (the worker runs with a 1 s checkpoint threshold)."""

import asyncio
from pathlib import Path

from hightide import Context, SubtaskUnwrapError, idempotency_keys, logger, queue, step, task, wait


@task(id="double")
async def double(payload: dict) -> int:
    if payload.get("fail"):
        raise ValueError(f"cannot double {payload['n']}")
    return payload["n"] * 2


@task(id="parent-waits")
async def parent_waits(payload: dict) -> dict:
    logger.info("before child")
    child = await double.trigger_and_wait({"n": payload["n"]})
    logger.info("after child")
    await wait.for_(seconds=payload.get("sleep", 2))
    logger.info("after wait")
    return {"child": child.output, "child_run": child.id}


@task(id="gather-three")
async def gather_three(payload: dict) -> list:
    results = await asyncio.gather(*(double.trigger_and_wait({"n": n}) for n in (1, 2, 3)))
    return [r.unwrap() for r in results]


@task(id="fan-out")
async def fan_out(payload: dict) -> list:
    batch = await double.batch_trigger_and_wait([{"payload": {"n": n}} for n in range(payload["count"])])
    return batch.unwrap()


@task(id="unwrap-failure", retry={"max_attempts": 1})
async def unwrap_failure(payload: dict) -> dict:
    try:
        await double.trigger_and_wait({"n": 1, "fail": True}, max_attempts=1).unwrap()
    except SubtaskUnwrapError as exc:
        return {"run_id": exc.run_id, "error": exc.error["message"]}
    return {}


@task(id="token-waiter")
async def token_waiter(payload: dict) -> dict:
    token = await wait.create_token(timeout=payload.get("timeout"), tags=[payload["tag"]])
    result = await wait.for_token(token)
    return {"ok": result.ok, "output": result.output, "error": type(result.error).__name__ if result.error else None}


def _count(path: str) -> int:
    with Path(path).open("a") as f:
        f.write("x\n")
    return len(Path(path).read_text().splitlines())


@task(id="step-once", retry={"max_attempts": 3, "min_timeout": 0.05, "max_timeout": 0.1})
async def step_once(payload: dict, ctx: Context) -> dict:
    calls = await step("count", _count, payload["path"])
    await wait.for_(seconds=2)  # longer than the threshold: suspends, and the run is replayed
    if ctx.attempt.number == 1:
        raise RuntimeError("first attempt fails after the step")
    return {"calls_seen_by_step": calls, "attempt": ctx.attempt.number}


@task(id="changes-its-mind", retry={"max_attempts": 3})
async def changes_its_mind(payload: dict) -> str:
    marker = Path(payload["path"])
    if marker.exists():  # on replay it takes another branch: a different durable operation
        await wait.for_(seconds=3)
    else:
        marker.write_text("first execution")
        await double.trigger_and_wait({"n": 1})
    return "unreachable on replay"


serial = queue("serial", concurrency_limit=1)


@task(id="serial-child", queue=serial)
async def serial_child(payload: dict) -> str:
    return "child done"


@task(id="serial-parent", queue=serial)
async def serial_parent(payload: dict) -> str:
    return await serial_child.trigger_and_wait({}).unwrap()


@task(id="parent-of-waiter")
async def parent_of_waiter(payload: dict) -> dict:
    return await token_waiter.trigger_and_wait({"tag": payload["tag"]}, tags=[payload["tag"]]).unwrap()


@task(id="keyed-parent")
async def keyed_parent(payload: dict) -> dict:
    key = await idempotency_keys.create(payload["key"], scope=payload["scope"])
    result = await double.trigger_and_wait({"n": payload["n"]}, idempotency_key=key)
    return {"child": result.id, "output": result.output}


@task(id="keyed-timer")
async def keyed_timer(payload: dict) -> str:
    await wait.for_(seconds=payload["seconds"], idempotency_key=payload["key"])
    return "resumed"


@task(id="fails-once", retry={"max_attempts": 1})
async def fails_once(payload: dict) -> str:
    marker = Path(payload["path"])
    if not marker.exists():
        marker.write_text("failed once")
        raise RuntimeError("the first run of this child fails")
    return "child ok"


@task(id="retries-its-child", retry={"max_attempts": 3, "min_timeout": 0.05, "max_timeout": 0.1})
async def retries_its_child(payload: dict) -> str:
    return await fails_once.trigger_and_wait({"path": payload["path"]}).unwrap()


async def _two_steps(n: int) -> int:
    doubled = await double.trigger_and_wait({"n": n}).unwrap()  # the branches finish in any order
    return await step(f"add-{n}", lambda: doubled + 1)


@task(id="gather-branches")
async def gather_branches(payload: dict) -> list:
    return list(await asyncio.gather(*(_two_steps(n) for n in range(4))))
