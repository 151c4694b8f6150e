"""Realtime under load: what open SSE subscribers cost the drain, and how fast a change reaches them.

Each phase starts a fresh ``hightide server`` (SQLite) and queues ``--runs`` no-op runs with no
worker running; ``--subscribers`` SDK subscriptions (``runs.subscribe``, one per run, spread over
the queue) are opened and receive their run's QUEUED state; then one ``hightide worker
--concurrency 2`` drains the queue, as in ``run.py`` (b). Reported per phase:

- drain rate: runs / (last ``finished_at`` - first ``started_at``);
- latency: the time a subscriber received the COMPLETED state minus the run's ``finished_at``
  (the server's clock; everything runs on this machine), p50 / p90 / p99 / max.

The first phase has no subscriber (the baseline), the second ``--subscribers``. The subscribers
run in this process, on the same machine as the server and worker: their own CPU is part of the cost.

    python bench/realtime.py                       # 5,000 runs, 0 then 200 subscribers
    python bench/realtime.py --runs 2000 --subscribers 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import Proc, log, split_cpu_seconds
from hightide_side import Hightide, _runs_since, _ts, _wait_finished

from hightide import AsyncClient, RunStatus

PER_CLIENT = 40  # streams per SDK client (its connection pool holds 50)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def phase(workdir: Path, runs: int, subscribers: int) -> dict[str, Any]:
    ht = Hightide(workdir, name=f"subscribers-{subscribers}")
    clients: list[AsyncClient] = []
    watchers: list[asyncio.Task[None]] = []
    try:
        ht.start_server()
        worker = ht.start_worker()  # registers the task, then stops
        worker.wait_for_output("connected to", 60)
        ht.stop_worker()
        client = AsyncClient(api_url=ht.api_url, secret_key=ht.key)
        clients.append(client)
        since = time.time() - 1
        ids: list[str] = []
        for start in range(0, runs, 500):
            batch = await client.batch_trigger([{"task": "noop", "payload": None}] * min(500, runs - start))
            ids += batch.ids
        watched = ids[:: max(1, len(ids) // subscribers)][:subscribers] if subscribers else []
        received: dict[str, dict[str, float]] = {rid: {} for rid in watched}

        async def watch(sdk: AsyncClient, run_id: str) -> None:
            async for run in sdk.runs.subscribe(run_id):
                received[run_id].setdefault(run.status.value, time.time())

        for i, run_id in enumerate(watched):
            if i % PER_CLIENT == 0:
                clients.append(AsyncClient(api_url=ht.api_url, secret_key=ht.key))
            watchers.append(asyncio.create_task(watch(clients[-1], run_id)))
        deadline = time.monotonic() + 60
        while any(RunStatus.QUEUED.value not in r for r in received.values()):
            if time.monotonic() > deadline:
                raise RuntimeError("the subscribers did not all receive their first state")
            await asyncio.sleep(0.05)
        log(f"{subscribers} subscribers open; draining {runs} runs")
        assert ht.server is not None
        server_cpu, client_cpu = split_cpu_seconds(ht.server.pid)[0], time.process_time()
        ht.start_worker()
        if not await _wait_finished(client, 300):
            raise RuntimeError("the drain did not finish in 300 s")
        server_cpu = split_cpu_seconds(ht.server.pid)[0] - server_cpu
        client_cpu = time.process_time() - client_cpu
        await asyncio.wait_for(asyncio.gather(*watchers), 30)
        finished = await _runs_since(client, since)
        starts = [_ts(r.started_at) for r in finished.values()]
        ends = [_ts(r.finished_at) for r in finished.values()]
        lat = [
            (received[rid][RunStatus.COMPLETED.value] - _ts(finished[rid].finished_at)) * 1000
            for rid in watched
            if RunStatus.COMPLETED.value in received[rid]
        ]
        out: dict[str, Any] = {
            "runs": len(finished),
            "subscribers": subscribers,
            "drain_rate": round(len(finished) / (max(ends) - min(starts)), 1),
            "server_cpu_ms_per_run": round(server_cpu / len(finished) * 1000, 3),
            "bench_process_cpu_ms_per_run": round(client_cpu / len(finished) * 1000, 3),
        }
        if lat:
            out["latency_ms"] = {
                "p50": round(statistics.median(lat), 1),
                "p90": round(_pct(lat, 0.90), 1),
                "p99": round(_pct(lat, 0.99), 1),
                "max": round(max(lat), 1),
                "n": len(lat),
            }
        return out
    finally:
        for task in watchers:
            task.cancel()
        for sdk in clients:
            await sdk.aclose()
        ht.close()


async def main_async(runs: int, subscribers: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="hightide-bench-rt-") as tmp:
        results = []
        for count in (0, subscribers):
            results.append(await phase(Path(tmp), runs, count))
            log(json.dumps(results[-1]))
        return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--subscribers", type=int, default=200)
    args = parser.parse_args(argv)
    try:
        results = asyncio.run(main_async(args.runs, args.subscribers))
    finally:
        for proc in list(Proc.live):
            proc.stop(grace=5)
    base, loaded = results
    print(json.dumps(results, indent=2))
    cost = 1 - loaded["drain_rate"] / base["drain_rate"]
    print(
        f"drain: {base['drain_rate']}/s alone, {loaded['drain_rate']}/s with {loaded['subscribers']} subscribers "
        f"({cost:+.1%} cost); COMPLETED reached subscribers p99 {loaded.get('latency_ms', {}).get('p99')} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
