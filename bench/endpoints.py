"""Diagnostics for the Hightide numbers: round trips of single API calls, one at a time, against a
real ``hightide server`` (SQLite), and the start-up time of a runner process.

    python bench/endpoints.py [--n 200]

The worker's drain loop is claim -> execute -> complete; with no-op tasks its rate is bounded by
how fast those round trips are and how many runs each one carries. Not part of ``run.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Proc
from hightide_side import Hightide


def _row(label: str, seconds: list[float], per: int = 1) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p50, p90 = ms[len(ms) // 2], ms[int(len(ms) * 0.9)]
    rate = per / statistics.median(seconds)
    return f"{label:44s} p50 {p50:6.2f} ms  p90 {p90:6.2f} ms  -> {rate:7,.0f} runs/s if serial"


async def _time(fn: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t)
    return out


async def main(n: int) -> None:
    from hightide.sdk.http import ApiSession

    tmp = Path(tempfile.mkdtemp(prefix="hightide-endpoints-"))
    ht = Hightide(tmp)
    try:
        ht.start_server()
        s = ApiSession(ht.api_url, ht.key)
        manifest = {"tasks": [{"id": "noop"}]}
        vid = (await s.request("POST", "/api/v1/worker/register", json={"manifest": manifest}))["version_id"]
        item: dict[str, Any] = {"task": "noop", "payload": None, "options": {}}
        for _ in range(2 * n // 500 + 4):
            await s.request("POST", "/api/v1/tasks/batch", json={"items": [item] * 500})
        claimed: list[dict[str, Any]] = []

        async def claim(k: int) -> None:
            body = {"worker_id": "w1", "version_id": vid, "max_runs": k, "wait": 0}
            claimed.extend((await s.request("POST", "/api/v1/worker/claim", json=body))["runs"])

        async def complete(k: int) -> None:
            batch = [claimed.pop() for _ in range(k)]
            results = [{"run_id": e["run_id"], "attempt": e["attempt"], "ok": True, "output": 1.0} for e in batch]
            await s.request("POST", "/api/v1/worker/complete", json={"worker_id": "w1", "results": results})

        async def cycle(k: int) -> None:
            await claim(k)
            await complete(k)

        print(_row("GET /healthz (HTTP floor)", await _time(lambda: s.request("GET", "/healthz"), n)))
        body: dict[str, Any] = {"payload": None, "options": {}}
        trigger = await _time(lambda: s.request("POST", "/api/v1/tasks/noop/trigger", json=body), n)
        print(_row("POST tasks/noop/trigger", trigger))
        # The environment's concurrency limit (100) caps runs held at once: claim, then complete.
        for k, rounds in ((1, n), (10, max(n // 10, 5))):
            c_times, p_times = [], []
            for _ in range(rounds):
                t = time.perf_counter()
                await claim(k)
                c_times.append(time.perf_counter() - t)
                t = time.perf_counter()
                await complete(k)
                p_times.append(time.perf_counter() - t)
            print(_row(f"POST worker/claim max_runs={k}", c_times, k))
            print(_row(f"POST worker/complete with {k} result(s)", p_times, k))
        await claim(2)
        held = [{"run_id": e["run_id"], "attempt": e["attempt"]} for e in claimed]
        hb = {"worker_id": "w1", "runs": held, "wait": 0, "extend": False}
        print(
            _row(
                "POST worker/heartbeat (2 runs, wait 0)",
                await _time(lambda: s.request("POST", "/api/v1/worker/heartbeat", json=hb), n),
            )
        )
        await complete(2)
        loop = await _time(lambda: cycle(1), n)
        print(_row("claim(1) + complete(1), serial (drain path)", loop))
        await s.aclose()
    finally:
        ht.close()
        shutil.rmtree(tmp, ignore_errors=True)
    spawn = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import hightide.worker.runner"], check=True)
        spawn.append(time.perf_counter() - t)
    ms = sorted(x * 1000 for x in spawn)
    print(
        f"{'runner process start-up (import only)':44s} p50 {ms[len(ms) // 2]:6.1f} ms  (paid every runs_per_process runs)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200)
    try:
        asyncio.run(main(parser.parse_args().n))
    finally:
        Proc.stop_all()
