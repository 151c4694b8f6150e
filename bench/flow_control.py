"""Flow control under load: the drain of ``run.py`` (b), plain and with each kind of limit.

Each phase starts a fresh ``hightide server`` (SQLite), queues ``--runs`` no-op runs with no worker
running, then one ``hightide worker --concurrency 2`` drains them, as in ``run.py`` (b):

- *plain*: the runs as ``run.py`` queues them (the task's own queue, no limit, no key);
- *keys*: the same runs, each with one of ``--keys`` concurrency keys in turn (``tenant-0`` ...,
  so a key's runs are spread over the whole queue), and the queue's limit overridden to
  ``--key-limit`` before the worker starts: every key has its own copy of that limit, and every
  claim takes keys by turns;
- *rate*: the runs on a queue with a rate limit (1,000,000 a minute: far above the drain, so what is
  measured is keeping the window, every start a row counted by each claim);
- *rate-per-key*: the runs with ``--keys`` keys on a queue with a rate limit per key (10,000 a
  minute each).

drain rate = runs / (last ``finished_at`` - first ``started_at``). Target (issue 10): each limited
drain keeps at least 80 % of the plain one.

    python bench/flow_control.py                      # 10,000 runs; 1,000 keys, limit 1 per key
    python bench/flow_control.py --rounds 4           # A B, B A, ...: the median ratio of 4 rounds
    python bench/flow_control.py --phases keys        # plain and one kind only
    python bench/flow_control.py --runs 2000 --keys 100
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
PHASES = {  # name: (task, uses keys)
    "plain": ("noop", False),
    "keys": ("noop", True),
    "rate": ("noop-rated", False),
    "rate-per-key": ("noop-rated-per-key", True),
}


async def phase(workdir: Path, name: str, runs: int, keys: int, key_limit: int, round_no: int) -> dict[str, Any]:
    task, keyed = PHASES[name]
    keys = keys if keyed else 0
    ht = Hightide(workdir, name=f"round-{round_no}-{name}")
    try:
        ht.start_registered()
        client = AsyncClient(api_url=ht.api_url, secret_key=ht.key)
        try:
            if name == "keys":
                await client.queues.override_concurrency_limit(QUEUE, key_limit)
            since = time.time() - 1
            for start in range(0, runs, 500):
                items = [
                    {
                        "task": task,
                        "payload": None,
                        "options": {"concurrency_key": f"tenant-{i % keys}"} if keys else {},
                    }
                    for i in range(start, min(start + 500, runs))
                ]
                await client.batch_trigger(items)
            log(f"round {round_no}: draining {runs} runs, {name}, {keys or 'no'} keys")
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
            "phase": name,
            "runs": len(finished),
            "keys": keys,
            "key_limit": key_limit if name == "keys" else None,
            "drain_rate": round(len(finished) / (max(ends) - min(starts)), 1),
            "server_cpu_ms_per_run": round(server_cpu / len(finished) * 1000, 3),
            "load_average_1m_at_start": round(load, 2),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        }
    finally:
        ht.close()


async def main_async(phases: list[str], runs: int, keys: int, key_limit: int, rounds: int) -> list[dict[str, Any]]:
    """The phases, ``rounds`` times, forwards in even rounds and backwards in odd ones."""
    with tempfile.TemporaryDirectory(prefix="hightide-bench-flow-") as tmp:
        results = []
        for k in range(rounds):
            for name in phases if k % 2 == 0 else phases[::-1]:
                results.append(await phase(Path(tmp), name, runs, keys, key_limit, k + 1))
                log(json.dumps(results[-1]))
        return results


def ratios(results: list[dict[str, Any]], name: str) -> list[float]:
    """Per round: the drain rate of phase ``name`` / the plain one."""
    out = []
    for k in sorted({r["round"] for r in results}):
        plain = next(r for r in results if r["round"] == k and r["phase"] == "plain")
        limited = next(r for r in results if r["round"] == k and r["phase"] == name)
        out.append(limited["drain_rate"] / plain["drain_rate"])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--key-limit", type=int, default=1, help="the queue's limit: each key's copy of it")
    parser.add_argument("--rounds", type=int, default=2, help="alternate the phases; report the median ratio")
    parser.add_argument(
        "--phases", nargs="+", choices=[p for p in PHASES if p != "plain"], default=[p for p in PHASES if p != "plain"]
    )
    args = parser.parse_args(argv)
    phases = ["plain", *args.phases]
    try:
        results = asyncio.run(main_async(phases, args.runs, args.keys, args.key_limit, args.rounds))
    finally:
        for proc in list(Proc.live):
            proc.stop(grace=5)
    print(json.dumps(results, indent=2))
    for res in results:
        name = res["phase"] + (f", {res['keys']} keys" if res["keys"] else "")
        print(
            f"round {res['round']}  {name:<24} {res['drain_rate']:>8}/s  server CPU/run {res['server_cpu_ms_per_run']} ms"
            f"  load {res['load_average_1m_at_start']}->{res['load_average_1m_at_end']}"
        )
    for name in args.phases:
        rs = ratios(results, name)
        median = statistics.median(rs)
        met = "met" if median >= TARGET_RATIO else "NOT met"
        print(
            f"{name} / plain per round: {', '.join(f'{r:.2f}' for r in rs)}; median {median:.2f} (>= {TARGET_RATIO}: {met})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
