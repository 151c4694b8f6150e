"""The no-op task. It returns ``time.time()`` taken as its first action, so the benchmark can
measure trigger-to-start latency with the task's own clock (same machine, same clock as the client).

``async def`` and an untyped payload: the cheapest path through the runner (no thread hop, no
payload validation), as the Celery task is a plain function with no arguments.
"""

import time
from typing import Any

from hightide import queue, task


@task(id="noop")
async def noop(payload: Any) -> float:
    return time.time()


# The flow-control benchmark's no-ops (bench/flow_control.py): the same task on rate-limited queues,
# with limits far above the drain rate, so that what is measured is the cost of keeping the window.
rated = queue("rated", rate_limit={"limit": 1_000_000, "period": "1m"})
rated_per_key = queue("rated-per-key", rate_limit={"limit": 10_000, "period": "1m", "per": "concurrency_key"})


@task(id="noop-rated", queue=rated)
async def noop_rated(payload: Any) -> float:
    return time.time()


@task(id="noop-rated-per-key", queue=rated_per_key)
async def noop_rated_per_key(payload: Any) -> float:
    return time.time()
