"""Realtime under load: what open SSE subscribers cost the drain, and how fast a change reaches them.

Each phase starts a fresh ``hightide server`` (SQLite) and queues ``--runs`` no-op runs with no
worker running; ``--subscribers`` SDK subscriptions (``runs.subscribe``, one per run, spread over
the queue) are opened and receive their run's QUEUED state; then one ``hightide worker
--concurrency 2`` drains the queue, as in ``run.py`` (b). Reported per phase:

- drain rate: runs / (last ``finished_at`` - first ``started_at``);
- latency: the time a subscriber received the COMPLETED state minus the run's ``finished_at``
  (the server's clock; everything runs on this machine), p50 / p90 / p99 / max.

The first phase has no subscriber (the baseline), the second ``--subscribers``. With
``--tag-streams K`` a third phase opens K ``runs.subscribe_to_tag`` streams on a tag that every
run carries: each stream sees every change of the environment, as a page listing the newest runs
does (the dashboard's Runs page stream would), and the latency is measured over every run's
COMPLETED on every stream. The subscribers run in this process, on the same machine as the
server and worker: their own CPU is part of the cost.

    python bench/realtime.py                       # 5,000 runs, 0 then 200 subscribers
    python bench/realtime.py --runs 2000 --subscribers 50
    python bench/realtime.py --tag-streams 5       # and a phase with 5 streams of every change
    python bench/realtime.py --rounds 4            # A B, B A, A B, B A: the median cost of 4 rounds

On a machine whose load moves, one pair of phases says little about a cost of a few percent:
``--rounds`` repeats them, alternating their order, and reports each round's cost and the median.
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

from common import Proc, latency_ms, log, split_cpu_seconds
from hightide_side import Hightide, _runs_since, _ts, _wait_finished

from hightide import AsyncClient, RunStatus

PER_CLIENT = 40  # streams per SDK client (its connection pool holds 50)
EVERY = "bench-every-run"  # the tag of every run (for --tag-streams)


async def phase(workdir: Path, runs: int, subscribers: int, tag_streams: int = 0, round_no: int = 1) -> dict[str, Any]:
    ht = Hightide(workdir, name=f"round-{round_no}-subscribers-{subscribers}-tag-streams-{tag_streams}")
    clients: list[AsyncClient] = []
    watchers: list[asyncio.Task[None]] = []
    try:
        ht.start_registered()
        client = AsyncClient(api_url=ht.api_url, secret_key=ht.key)
        clients.append(client)
        since = time.time() - 1
        ids: list[str] = []
        for start in range(0, runs, 500):
            item = {"task": "noop", "payload": None, "options": {"tags": [EVERY]}}
            batch = await client.batch_trigger([item] * min(500, runs - start))
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
        # Per tag stream: when it first saw each run COMPLETED; `ready` once its first state came.
        streamed: list[dict[str, float]] = [{} for _ in range(tag_streams)]
        ready: list[bool] = [False] * tag_streams
        all_ids = set(ids)

        async def stream(sdk: AsyncClient, k: int) -> None:
            async for run in sdk.runs.subscribe_to_tag(EVERY, limit=1):
                ready[k] = True
                if run.status is RunStatus.COMPLETED:
                    streamed[k].setdefault(run.id, time.time())
                    if len(streamed[k]) >= len(all_ids):
                        return

        tag_client = AsyncClient(api_url=ht.api_url, secret_key=ht.key) if tag_streams else None
        if tag_client is not None:
            clients.append(tag_client)
        streams = [asyncio.create_task(stream(tag_client, k)) for k in range(tag_streams) if tag_client]
        watchers += streams
        deadline = time.monotonic() + 60
        while not all(ready) or any(RunStatus.QUEUED.value not in r for r in received.values()):
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
        await asyncio.wait_for(asyncio.gather(*watchers), 60)
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
            "tag_streams": tag_streams,
            "drain_rate": round(len(finished) / (max(ends) - min(starts)), 1),
            "server_cpu_ms_per_run": round(server_cpu / len(finished) * 1000, 3),
            "bench_process_cpu_ms_per_run": round(client_cpu / len(finished) * 1000, 3),
        }
        if lat:
            out["latency_ms"] = latency_ms(lat)
        seen = [(at - _ts(finished[rid].finished_at)) * 1000 for got in streamed for rid, at in got.items()]
        if seen:
            out["tag_stream_latency_ms"] = latency_ms(seen)
        return out
    finally:
        for task in watchers:
            task.cancel()
        for sdk in clients:
            await sdk.aclose()
        ht.close()


async def main_async(runs: int, subscribers: int, tag_streams: int, rounds: int = 1) -> list[dict[str, Any]]:
    """The phases in order, ``rounds`` times: round k runs them forwards when k is even and backwards
    when it is odd (A B, B A, ...), so that a machine growing busier or quieter weighs on both alike."""
    with tempfile.TemporaryDirectory(prefix="hightide-bench-rt-") as tmp:
        results = []
        plan = [(0, 0), (subscribers, 0)] + ([(0, tag_streams)] if tag_streams else [])
        for k in range(rounds):
            for count, streams in plan if k % 2 == 0 else plan[::-1]:
                results.append({**await phase(Path(tmp), runs, count, streams, k + 1), "round": k + 1})
                log(json.dumps(results[-1]))
        return results


def round_costs(results: list[dict[str, Any]]) -> list[float]:
    """Per round: 1 - (drain rate with the subscribers) / (drain rate with none)."""
    costs = []
    for k in sorted({r["round"] for r in results}):
        of = [r for r in results if r["round"] == k and not r["tag_streams"]]
        base = next(r for r in of if not r["subscribers"])
        loaded = next(r for r in of if r["subscribers"])
        costs.append(1 - loaded["drain_rate"] / base["drain_rate"])
    return costs


def table(results: list[dict[str, Any]]) -> str:
    bases = {r["round"]: r["drain_rate"] for r in results if not r["subscribers"] and not r["tag_streams"]}
    header = ["round", "phase", "drain rate", "vs none", "server CPU/run", "change -> subscriber p50 / p90 / p99 / max"]
    lines = []
    for res in results:
        base = bases[res["round"]]
        lat = res.get("latency_ms") or res.get("tag_stream_latency_ms")
        name = (
            f"{res['tag_streams']} tag streams (every run)"
            if res["tag_streams"]
            else (f"{res['subscribers']} run subscribers" if res["subscribers"] else "no subscriber")
        )
        lines.append(
            [
                str(res["round"]),
                name,
                f"{res['drain_rate']}/s",
                f"{res['drain_rate'] / base - 1:+.1%}",
                f"{res['server_cpu_ms_per_run']} ms",
                f"{lat['p50']} / {lat['p90']} / {lat['p99']} / {lat['max']} ms (n={lat['n']})" if lat else "",
            ]
        )
    widths = [max(len(x[i]) for x in [header, *lines]) for i in range(len(header))]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--tag-streams", type=int, default=0, help="a third phase: streams of every run's changes")
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat the phases, alternating their order; report the median cost"
    )
    args = parser.parse_args(argv)
    try:
        results = asyncio.run(main_async(args.runs, args.subscribers, args.tag_streams, args.rounds))
    finally:
        for proc in list(Proc.live):
            proc.stop(grace=5)
    print(json.dumps(results, indent=2))
    print(table(results))
    costs = round_costs(results)
    p99s = [r["latency_ms"]["p99"] for r in results if r.get("latency_ms")]
    print(
        f"cost of {args.subscribers} subscribers to the drain, per round: "
        + ", ".join(f"{c:+.1%}" for c in costs)
        + f"; median {statistics.median(costs):+.1%}. COMPLETED -> subscriber p99 per round: {p99s} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
