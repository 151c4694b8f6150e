"""Concurrency keys under load: the drain of ``run.py`` (b), with and without 1,000 keys.

Each phase starts a fresh ``hightide server`` (SQLite), queues ``--runs`` no-op runs with no worker
running, then one ``hightide worker --concurrency 2`` drains them, as in ``run.py`` (b):

- *plain*: the runs as ``run.py`` queues them (the task's own queue, no limit, no key);
- *keys*: the same runs, each with one of ``--keys`` concurrency keys in turn (``tenant-0`` ...,
  so a key's runs are spread over the whole queue), and the queue's limit overridden to
  ``--key-limit`` before the worker starts: every key has its own copy of that limit, and every
  claim takes keys by turns.

drain rate = runs / (last ``finished_at`` - first ``started_at``). Target (issue 10): the keyed
drain keeps at least 80 % of the plain one.

    python bench/concurrency_keys.py                    # 10,000 runs, 1,000 keys, limit 1 per key
    python bench/concurrency_keys.py --rounds 4         # A B, B A, A B, B A: the median ratio of 4 rounds
    python bench/concurrency_keys.py --runs 2000 --keys 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import Proc, log, split_cpu_seconds
from hightide_side import Hightide, _runs_since, _ts, _wait_finished

from hightide import AsyncClient

QUEUE = "task/noop"
TARGET_RATIO = 0.8


async def phase(workdir: Path, runs: int, keys: int, key_limit: int, round_no: int) -> dict[str, Any]:
    ht = Hightide(workdir, name=f"round-{round_no}-keys-{keys}")
    try:
        ht.start_server()
        worker = ht.start_worker()  # registers the task, then stops
        worker.wait_for_output("connected to", 60)
        ht.stop_worker()
        client = AsyncClient(api_url=ht.api_url, secret_key=ht.key)
        try:
            if keys:
                await client.queues.override_concurrency_limit(QUEUE, key_limit)
            since = time.time() - 1
            for start in range(0, runs, 500):
                items = [
                    {
                        "task": "noop",
                        "payload": None,
                        "options": {"concurrency_key": f"tenant-{i % keys}"} if keys else {},
                    }
                    for i in range(start, min(start + 500, runs))
                ]
                await client.batch_trigger(items)
            log(f"round {round_no}: draining {runs} runs with {keys or 'no'} keys")
            assert ht.server is not None
            server_cpu = split_cpu_seconds(ht.server.pid)[0]
            load = os.getloadavg()[0]
            ht.start_worker()
            if not await _wait_finished(client, 600):
                raise RuntimeError("the drain did not finish in 600 s")
            server_cpu = split_cpu_seconds(ht.server.pid)[0] - server_cpu
            finished = await _runs_since(client, since)
        finally:
            await client.aclose()
        starts = [_ts(r.started_at) for r in finished.values()]
        ends = [_ts(r.finished_at) for r in finished.values()]
        return {
            "round": round_no,
            "runs": len(finished),
            "keys": keys,
            "key_limit": key_limit if keys else None,
            "drain_rate": round(len(finished) / (max(ends) - min(starts)), 1),
            "server_cpu_ms_per_run": round(server_cpu / len(finished) * 1000, 3),
            "load_average_1m_at_start": round(load, 2),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        }
    finally:
        ht.close()


async def main_async(runs: int, keys: int, key_limit: int, rounds: int) -> list[dict[str, Any]]:
    """The two phases, ``rounds`` times, forwards in even rounds and backwards in odd ones."""
    with tempfile.TemporaryDirectory(prefix="hightide-bench-keys-") as tmp:
        results = []
        for k in range(rounds):
            for count in (0, keys) if k % 2 == 0 else (keys, 0):
                results.append(await phase(Path(tmp), runs, count, key_limit, k + 1))
                log(json.dumps(results[-1]))
        return results


def ratios(results: list[dict[str, Any]]) -> list[float]:
    """Per round: the keyed drain rate / the plain one."""
    out = []
    for k in sorted({r["round"] for r in results}):
        plain = next(r for r in results if r["round"] == k and not r["keys"])
        keyed = next(r for r in results if r["round"] == k and r["keys"])
        out.append(keyed["drain_rate"] / plain["drain_rate"])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--key-limit", type=int, default=1, help="the queue's limit: each key's copy of it")
    parser.add_argument("--rounds", type=int, default=2, help="alternate the phases; report the median ratio")
    args = parser.parse_args(argv)
    try:
        results = asyncio.run(main_async(args.runs, args.keys, args.key_limit, args.rounds))
    finally:
        for proc in list(Proc.live):
            proc.stop(grace=5)
    print(json.dumps(results, indent=2))
    for res in results:
        name = f"{res['keys']} keys, limit {res['key_limit']} each" if res["keys"] else "plain"
        print(
            f"round {res['round']}  {name:<24} {res['drain_rate']:>8}/s  server CPU/run {res['server_cpu_ms_per_run']} ms"
            f"  load {res['load_average_1m_at_start']}->{res['load_average_1m_at_end']}"
        )
    rs = ratios(results)
    median = statistics.median(rs)
    print(
        "keyed / plain per round: "
        + ", ".join(f"{r:.2f}" for r in rs)
        + f"; median {median:.2f} (target >= {TARGET_RATIO}: {'met' if median >= TARGET_RATIO else 'NOT met'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
