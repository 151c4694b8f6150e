"""The benchmark's Celery app: one no-op task on a dedicated Redis db (broker and result backend).

The result backend is on because the latency benchmark needs the task's start time back, and
because it makes Celery record every task's outcome, as Hightide always does for its runs.
"""

from __future__ import annotations

import os
import time

from celery import Celery

REDIS_URL = os.environ.get("BENCH_CELERY_REDIS_URL", "redis://127.0.0.1:6379/15")

app = Celery("bench", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="noop")
def noop() -> float:
    """Return the time at which the task started (its first action)."""
    return time.time()
