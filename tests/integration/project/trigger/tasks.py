"""Tasks used by the integration tests."""

import asyncio
import logging
import os
import time

from pydantic import BaseModel, Field

from hightide import AbortTaskRunError, Context, logger, task


class Order(BaseModel):
    order_id: str
    quantity: int = Field(gt=0)


@task(id="echo")
async def echo(payload: dict, ctx: Context) -> dict:
    return {
        "payload": payload,
        "run": ctx.run.id,
        "attempt": ctx.attempt.number,
        "tags": ctx.run.tags,
        "env": ctx.environment.slug,
        "queue": ctx.queue.name,
    }


@task(id="order")
async def order(payload: Order) -> dict:
    return {"order_id": payload.order_id, "total": payload.quantity * 2}


@task(id="chatty")
def chatty(payload: dict) -> str:
    logger.info("structured", step=1)
    print("printed line")
    logging.getLogger("user.module").warning("from logging")
    return "ok"


@task(id="abort", retry={"max_attempts": 5})
async def abort(payload: dict) -> None:
    raise AbortTaskRunError("nothing to do")


@task(id="always-fails", retry={"max_attempts": 2, "min_timeout": 0.05, "max_timeout": 0.1})
async def always_fails(payload: dict) -> None:
    raise ValueError("broken")


@task(id="serial", queue={"concurrency_limit": 1})
async def serial(payload: dict) -> dict:
    start = time.time()
    await asyncio.sleep(0.2)
    return {"start": start, "end": time.time(), "pid": os.getpid()}


@task(id="sleepy")
async def sleepy(payload: dict) -> str:
    await asyncio.sleep(payload.get("seconds", 30))
    return "woke"


@task(id="too-long", max_duration=0.5, retry={"max_attempts": 1})
async def too_long(payload: dict) -> None:
    await asyncio.sleep(10)
