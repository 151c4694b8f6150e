"""The Celery side: Celery 5 on the local Redis (dedicated db), one worker with 2 prefork processes.

(a) ``noop.delay()`` in a loop; batched: ``group(noop.s() x 500).apply_async()`` per batch.
(b) enqueue everything with no worker running, start the worker, time until every result is stored.
(c) ``noop.delay()`` at a steady rate; latency = the task's own ``time.time()`` at start minus the
    client's ``time.time()`` just before ``delay()``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
from common import (
    BENCH_DIR,
    Proc,
    Sizes,
    batch_sizes,
    child_env,
    latency_summary,
    log,
    rate_entry,
    split_cpu_seconds,
    tree_cpu_seconds,
)

REDIS_URL = os.environ.get("BENCH_CELERY_REDIS_URL", "redis://127.0.0.1:6379/15")
META_PREFIX = "celery-task-meta-"


def _results(r: redis.Redis, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The stored results of ``ids`` that are done (SUCCESS or FAILURE), by id: MGET in chunks."""
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(ids), 2000):
        chunk = ids[i : i + 2000]
        for task_id, raw in zip(chunk, r.mget([META_PREFIX + x for x in chunk]), strict=True):
            if raw is not None:
                meta = json.loads(raw)
                if meta.get("status") in ("SUCCESS", "FAILURE"):
                    out[task_id] = meta
    return out


def _wait_done(r: redis.Redis, ids: Iterable[str], timeout: float, interval: float = 0.05) -> dict[str, dict[str, Any]]:
    """Poll until every id has a result or ``timeout`` passes; returns the results found.

    Light on purpose (the machine has 2 cores): while the broker queue is not empty only its
    length is read (O(1)); then the results of the ids still pending are fetched."""
    pending = list(ids)
    found: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while r.llen("celery") > 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    while pending and time.monotonic() < deadline:
        got = _results(r, pending)
        found.update(got)
        pending = [x for x in pending if x not in got]
        if pending:
            time.sleep(interval)
    if pending:  # timed out: count what did finish
        found.update(_results(r, pending))
    return found


def _start_worker(workdir: Path) -> Proc:
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "celery_app",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        "2",
        "--loglevel",
        "WARNING",
        "--hostname",
        f"bench-{os.getpid()}@%h",
        # Startup only: no waiting to sync with (absent) other workers; no effect on throughput.
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    env = child_env(PYTHONPATH=str(BENCH_DIR), BENCH_CELERY_REDIS_URL=REDIS_URL)
    return Proc("celery-worker", args, cwd=workdir, env=env, log_dir=workdir)


def run(sizes: Sizes, workdir: Path) -> dict[str, Any]:
    from celery import group
    from celery_app import app, noop

    workdir.mkdir(parents=True, exist_ok=True)
    r = redis.Redis.from_url(REDIS_URL)
    r.flushdb()
    out: dict[str, Any] = {
        "system": "celery",
        "setup": {
            "broker": REDIS_URL,
            "result_backend": REDIS_URL,
            "worker": "1 worker, --pool prefork --concurrency 2 (2 worker processes), prefetch multiplier 4 (default)",
            "batch_api": f"group(noop.s() x {sizes.batch_size}).apply_async() per batch",
        },
    }
    worker: Proc | None = None
    try:
        # -- (a) trigger rate, no worker running ------------------------------------------------
        ids: list[str] = []
        for _ in range(sizes.warmup):  # opens the broker connection; queued, not timed
            ids.append(noop.delay().id)
        n_single = sizes.single - sizes.warmup
        t0 = time.perf_counter()
        for _ in range(n_single):
            ids.append(noop.delay().id)
        single_s = time.perf_counter() - t0
        out["trigger_single"] = rate_entry(n_single, single_s)
        log(f"celery: delay() x{n_single}: {n_single / single_s:,.0f}/s")

        t0 = time.perf_counter()
        for n in batch_sizes(sizes.batched, sizes.batch_size):
            result = group(noop.s() for _ in range(n)).apply_async()
            ids.extend(x.id for x in result.results)
        batch_s = time.perf_counter() - t0
        out["trigger_batch"] = rate_entry(sizes.batched, batch_s, batch_size=sizes.batch_size)
        log(f"celery: group().apply_async() x{sizes.batched}: {sizes.batched / batch_s:,.0f}/s")

        # -- (b) drain --------------------------------------------------------------------------
        queued = r.llen("celery")
        assert queued == len(ids) == sizes.drain, (queued, len(ids), sizes.drain)
        redis_pid = int(r.info("server")["process_id"])
        redis_cpu = tree_cpu_seconds(redis_pid)
        spawn_at = time.time()
        worker = _start_worker(workdir)
        found = _wait_done(r, ids, sizes.drain_timeout)
        wall = time.time() - spawn_at
        main, pool = split_cpu_seconds(worker.pid)
        cpu = {"worker_main": main, "worker_pool": pool, "redis": tree_cpu_seconds(redis_pid) - redis_cpu}
        starts = [m["result"] for m in found.values() if m["status"] == "SUCCESS"]
        dones = [datetime.fromisoformat(m["date_done"]).timestamp() for m in found.values()]
        complete = len(found) == len(ids)
        window = (max(dones) - min(starts)) if starts else float("nan")
        out["drain"] = {
            "n": len(ids),
            "done": len(found),
            "failed": sum(1 for m in found.values() if m["status"] != "SUCCESS"),
            "complete": complete,
            "window_seconds": round(window, 3),
            "rate": round(len(found) / window, 1) if starts else 0.0,
            "wall_seconds_incl_worker_start": round(wall, 3),
            "rate_incl_worker_start": round(len(found) / wall, 1),
            # CPU per finished task, worker start-up included (main process; its 2 pool processes; Redis)
            "cpu_ms_per_run": {k: round(v * 1000 / max(len(found), 1), 2) for k, v in cpu.items()},
        }
        log(
            f"celery: drained {len(found)}/{len(ids)} in {window:.2f}s (+startup: {wall:.2f}s): {len(found) / window:,.0f}/s"
        )

        # -- (c) trigger-to-start latency at a steady rate ----------------------------------------
        n = int(sizes.latency_rate * sizes.latency_seconds)
        sent: list[tuple[str, float]] = []
        begin = time.monotonic() + 0.1
        for i in range(n):
            target = begin + i / sizes.latency_rate
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            t_send = time.time()
            sent.append((noop.delay().id, t_send))
        actual_rate = n / (time.monotonic() - begin)
        found = _wait_done(r, [x for x, _ in sent], sizes.settle_timeout)
        lat = [found[x]["result"] - t for x, t in sent if x in found and found[x]["status"] == "SUCCESS"]
        done_lat = [datetime.fromisoformat(found[x]["date_done"]).timestamp() - t for x, t in sent if x in found]
        out["latency"] = {
            "rate_target": sizes.latency_rate,
            "rate_actual": round(actual_rate, 1),
            "seconds": sizes.latency_seconds,
            "sent": n,
            "done": len(found),
            "start": latency_summary(lat),
            "finish": latency_summary(done_lat),
            # per task, in send order: [seconds since the first send, trigger->start ms]
            "samples": [
                [round(t - sent[0][1], 3), round((found[x]["result"] - t) * 1000, 2)]
                for x, t in sent
                if x in found and found[x]["status"] == "SUCCESS"
            ],
        }
        log(
            f"celery: trigger->start p50 {out['latency']['start']['p50_ms']} ms, p99 {out['latency']['start']['p99_ms']} ms"
        )
    finally:
        if worker is not None:
            worker.stop()
        r.flushdb()
        r.close()
        app.close()
    return out
