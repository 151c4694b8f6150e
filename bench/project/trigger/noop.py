"""The no-op task. It returns ``time.time()`` taken as its first action, so the benchmark can
measure trigger-to-start latency with the task's own clock (same machine, same clock as the client).

``async def`` and an untyped payload: the cheapest path through the runner (no thread hop, no
payload validation), as the Celery task is a plain function with no arguments.
"""

import time
from typing import Any

from hightide import task


@task(id="noop")
async def noop(payload: Any) -> float:
    return time.time()
