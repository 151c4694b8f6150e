import asyncio

from hightide import queue, task

lane = queue("lane", concurrency_limit=2)


@task(id="in-lane", queue=lane)
async def in_lane(payload: dict) -> str:
    await asyncio.sleep(payload.get("seconds", 0))
    return "done"
