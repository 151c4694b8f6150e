import asyncio
import time

from hightide import queue, task

lane = queue("lane", concurrency_limit=2)


@task(id="in-lane", queue=lane)
async def in_lane(payload: dict) -> str:
    await asyncio.sleep(payload.get("seconds", 0))
    return "done"


tenants = queue("tenants", concurrency_limit=1)  # per concurrency key: one run of each tenant at once


@task(id="per-tenant", queue=tenants)
async def per_tenant(payload: dict) -> dict:
    started = time.time()
    await asyncio.sleep(payload["seconds"])
    return {"started": started, "finished": time.time()}


metered = queue("metered", rate_limit={"limit": 2, "period": "2s"})  # two starts in any 2 s


@task(id="metered", queue=metered)
async def metered_task(payload: dict) -> float:
    return time.time()


per_tenant_rate = queue("tenant-rate", rate_limit={"limit": 1, "period": "2s", "per": "concurrency_key"})


@task(id="tenant-metered", queue=per_tenant_rate)
async def tenant_metered(payload: dict) -> float:
    return time.time()
