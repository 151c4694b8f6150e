"""How fast a change reaches open dashboard pages while the engine drains, and what they cost it.

A real ``hightide server`` and worker drain ``--runs`` no-op runs twice: with no page open, then with
``--pages`` signed-in Runs pages open (each the page's own live stream: ``GET
/projects/default/env/dev/runs`` asked for ``text/event-stream``, as the browser's EventSource does).
For every row a page shows, the time from the run's ``finished_at`` to the first event that renders
its row Completed: the "change -> open page" latency of the dashboard, HTML included.

    python bench/dashboard_live.py                  # 3000 runs, 0 then 5 pages
    python bench/dashboard_live.py --pages 20 --runs 5000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from common import Proc, child_env, latency_ms, log, split_cpu_seconds
from hightide_side import CLI, Hightide, _runs_since, _ts, _wait_finished

from hightide import AsyncClient

ROW = re.compile(r'<tr id="run-(run_[0-9a-z]+)"(.*?)</tr>', re.S)
RUNS_PAGE = "/projects/default/env/dev/runs"


def sign_in(ht: Hightide) -> tuple[httpx.AsyncClient, str]:
    """A client holding a dashboard session of the first admin (a link from ``hightide users login-link``)."""
    args = ["users", "login-link", "admin@localhost", "--database-url", str(ht.db), "--public-url", ht.api_url]
    made = subprocess.run(
        [sys.executable, "-c", CLI, *args],
        cwd=ht.workdir,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    link = made.stdout.strip().splitlines()[-1]
    return httpx.AsyncClient(base_url=ht.api_url, timeout=httpx.Timeout(10, read=None)), link


async def watch_page(http: httpx.AsyncClient, seen: dict[str, float], ready: asyncio.Event) -> None:
    """Read one page's stream; note when each row first arrives Completed."""
    async with http.stream("GET", RUNS_PAGE, headers={"Accept": "text/event-stream"}) as answer:
        answer.raise_for_status()
        data: list[str] = []
        async for line in answer.aiter_lines():
            ready.set()  # the stream's first line (its retry interval) comes once it is subscribed
            if line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif line == "" and data:
                now = time.time()
                for found in ROW.finditer("\n".join(data)):
                    if "s-completed" in found.group(2):
                        seen.setdefault(found.group(1), now)
                data = []


async def phase(workdir: Path, runs: int, pages: int) -> dict[str, Any]:
    ht = Hightide(workdir, name=f"pages-{pages}")
    tasks: list[asyncio.Task[None]] = []
    clients: list[httpx.AsyncClient] = []
    try:
        ht.start_registered()
        client = AsyncClient(api_url=ht.api_url, secret_key=ht.key)
        since = time.time() - 1
        for start in range(0, runs, 500):
            await client.batch_trigger([{"task": "noop", "payload": None}] * min(500, runs - start))
        seen: list[dict[str, float]] = [{} for _ in range(pages)]
        for k in range(pages):
            http, link = sign_in(ht)
            clients.append(http)
            signed = await http.get(link)
            if signed.status_code != 303:
                raise RuntimeError(f"the login link did not sign in: {signed.status_code}")
            ready = asyncio.Event()
            tasks.append(asyncio.create_task(watch_page(http, seen[k], ready)))
            await asyncio.wait_for(ready.wait(), 30)
        log(f"{pages} pages open; draining {runs} runs")
        assert ht.server is not None
        server_cpu = split_cpu_seconds(ht.server.pid)[0]
        ht.start_worker()
        if not await _wait_finished(client, 300):
            raise RuntimeError("the drain did not finish in 300 s")
        server_cpu = split_cpu_seconds(ht.server.pid)[0] - server_cpu
        await asyncio.sleep(3)  # the last changes reach the pages
        finished = await _runs_since(client, since)
        await client.aclose()
        starts = [_ts(r.started_at) for r in finished.values()]
        ends = [_ts(r.finished_at) for r in finished.values()]
        lat = [
            (at - _ts(finished[rid].finished_at)) * 1000 for got in seen for rid, at in got.items() if rid in finished
        ]
        out: dict[str, Any] = {
            "runs": len(finished),
            "pages": pages,
            "drain_rate": round(len(finished) / (max(ends) - min(starts)), 1),
            "server_cpu_ms_per_run": round(server_cpu / len(finished) * 1000, 3),
        }
        if lat:
            out["latency_ms"] = latency_ms(lat)
        return out
    finally:
        for task in tasks:
            task.cancel()
        for http in clients:
            await http.aclose()
        ht.close()


async def main_async(runs: int, pages: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="hightide-bench-pages-") as tmp:
        results = []
        for count in (0, pages):
            results.append(await phase(Path(tmp), runs, count))
            log(json.dumps(results[-1]))
        return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--pages", type=int, default=5, help="open Runs pages in the second phase")
    args = parser.parse_args(argv)
    try:
        alone, watched = asyncio.run(main_async(args.runs, args.pages))
    finally:
        for proc in list(Proc.live):
            proc.stop(grace=5)
    print(json.dumps([alone, watched], indent=2))
    lat = watched.get("latency_ms", {})
    change = watched["drain_rate"] / alone["drain_rate"] - 1
    print(
        f"drain {alone['drain_rate']}/s alone, {watched['drain_rate']}/s with {args.pages} pages open ({change:+.1%}); "
        f"a row turned Completed on the pages p50 {lat.get('p50')} / p99 {lat.get('p99')} / max {lat.get('max')} ms "
        f"({lat.get('n')} rows)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
