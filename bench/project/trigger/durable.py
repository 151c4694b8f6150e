"""The durable benchmarks' tasks (see bench/durable.py).

(d) ``fanout-parent`` triggers ``payload["children"]`` no-op children with ``batch_trigger_and_wait``
    and returns their outputs in order (the parent suspends until they are done, then is replayed).
(e) ``sleeper`` waits 2 s with ``wait.for_``: longer than the benchmark's checkpoint threshold (1 s),
    so the run is suspended (``WAITING``) and replayed once the timer fires.

Each returns ``time.time()`` taken at the top of its last execution, i.e. when the replay started,
so the benchmark can split the wall time into its phases with the tasks' own clock.
"""

import time
from typing import Any

from hightide import task, wait


@task(id="fanout-child")
async def fanout_child(payload: Any) -> Any:
    return payload


@task(id="fanout-parent")
async def fanout_parent(payload: dict) -> dict:
    top = time.time()
    batch = await fanout_child.batch_trigger_and_wait([{"payload": i} for i in range(payload["children"])])
    return {"outputs": batch.unwrap(), "replay_started": top}


@task(id="sleeper")
async def sleeper(payload: dict) -> float:
    top = time.time()
    await wait.for_(seconds=payload["seconds"])
    return top
