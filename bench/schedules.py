"""Cron at scale: 10,000 schedules of ``* * * * *`` on PostgreSQL, fired by one and then by two
``hightide server`` processes on the same database, side by side in one run.

Each phase makes a fresh database, starts its servers, registers a task ``tick`` (no worker runs:
the runs stay queued, what is measured is the firing), creates ``--schedules`` schedules through
the API (spread over the servers), and watches ``--minutes`` minute boundaries. For each tick it
reports how late the runs could start (``max(created_at, available_at)`` minus the minute: a run is
made up to 5 s ahead of its tick and waits queued until it; p50/p90/p99/max), when they were made
(``created_at`` minus the minute: negative is ahead), how many
schedules fired (all of them, or some were missed) and whether any fired twice (the runs of one
schedule and tick, by their idempotency key ``schedule:<id>:<tick>``).

Target (issue 10): with 2 servers, every tick fires within 1 s of the minute (p99), each once.

    python bench/schedules.py                          # 10,000 schedules, 2 minutes, 1 then 2 servers
    python bench/schedules.py --schedules 2000 --minutes 1 --servers 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psycopg
from common import Proc, child_env, free_port, latency_summary, log
from sqlalchemy.engine import make_url

CLI = "from hightide.cli.main import main; main()"
TARGET_P99 = 1.0  # seconds after the minute


def _admin(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


class Servers:
    def __init__(self, workdir: Path, database_url: str, count: int) -> None:
        self.workdir = workdir
        self.database_url = database_url
        self.ports = [free_port() for _ in range(count)]
        self.urls = [f"http://127.0.0.1:{port}" for port in self.ports]
        self.procs: list[Proc] = []
        self.key = ""

    def start(self) -> None:
        for i, port in enumerate(self.ports):
            args = [sys.executable, "-c", CLI, "server", "--database-url", self.database_url, "--port", str(port)]
            self.procs.append(Proc(f"server{i + 1}", args, cwd=self.workdir, env=child_env(), log_dir=self.workdir))
        for proc in self.procs:
            proc.wait_for_output("Hightide server on", 120)
        made = subprocess.run(
            [sys.executable, "-c", CLI, "keys", "create", "--env", "dev", "--database-url", self.database_url],
            capture_output=True,
            text=True,
            check=True,
            env=child_env(),
            cwd=self.workdir,
        )
        self.key = made.stdout.strip()

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop(grace=5)


async def _create_schedules(servers: Servers, count: int) -> None:
    headers = {"Authorization": f"Bearer {servers.key}"}
    clients = [httpx.AsyncClient(base_url=url, headers=headers, timeout=60) for url in servers.urls]
    try:
        manifest = {"manifest": {"tasks": [{"id": "tick"}]}}
        assert (await clients[0].post("/api/v1/worker/register", json=manifest)).status_code == 200
        gate = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            async with gate:
                body = {"task": "tick", "cron": "* * * * *", "external_id": f"user-{i}"}
                answer = await clients[i % len(clients)].post("/api/v1/schedules", json=body)
                if answer.status_code != 201:
                    raise RuntimeError(f"schedule {i}: {answer.status_code} {answer.text}")

        started = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(count)))
        log(f"created {count} schedules in {time.monotonic() - started:.1f}s")
    finally:
        for client in clients:
            await client.aclose()


def _ticks(database_url: str, tick: float) -> tuple[list[float], list[float], Counter[str]]:
    """For each run of ``tick``: how late it could start (seconds after the tick that it was both
    made and available: a run made ahead waits queued until its tick) and when it was made
    (relative to the tick); and the number of runs per schedule."""
    suffix = f":{int(tick)}"
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT idempotency_key, created_at, available_at FROM runs"
            " WHERE task_id = 'tick' AND idempotency_key LIKE %s",
            (f"schedule:%{suffix}",),
        ).fetchall()
    late = [max(created, available) - tick for _key, created, available in rows]
    made = [created - tick for _key, created, _available in rows]
    per_schedule = Counter(key.split(":")[1] for key, _created, _available in rows)
    return late, made, per_schedule


async def phase(workdir: Path, base_url: str, count: int, servers_n: int, minutes: int) -> dict[str, Any]:
    name = f"hightide_bench_schedules_{uuid.uuid4().hex[:8]}"
    _admin(base_url, f'CREATE DATABASE "{name}"')
    url = make_url(base_url).set(database=name).render_as_string(hide_password=False)
    servers = Servers(workdir / f"servers-{servers_n}", url, servers_n)
    servers.workdir.mkdir(parents=True)
    try:
        servers.start()
        await _create_schedules(servers, count)
        results = []
        tick = (int(time.time()) // 60 + 1) * 60.0
        for _ in range(minutes):
            log(f"{servers_n} server(s): waiting for the tick at {time.strftime('%H:%M:%S', time.localtime(tick))}")
            await asyncio.sleep(max(0.0, tick + 15 - time.time()))  # 15 s after the minute: all fired
            late, made, per_schedule = _ticks(url, tick)
            results.append(
                {
                    "tick": time.strftime("%H:%M:%S", time.localtime(tick)),
                    "fired": len(per_schedule),
                    "missed": count - len(per_schedule),
                    "twice": sum(1 for n in per_schedule.values() if n > 1),
                    "late_s": latency_summary(late) if late else None,
                    "made_s": latency_summary(made) if made else None,
                }
            )
            log(json.dumps(results[-1]))
            tick += 60
        return {"servers": servers_n, "schedules": count, "ticks": results}
    finally:
        servers.stop()
        _admin(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="hightide-bench-schedules-") as tmp:
        return [await phase(Path(tmp), args.postgres_url, args.schedules, n, args.minutes) for n in args.servers]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--minutes", type=int, default=2, help="minute boundaries watched per phase")
    parser.add_argument("--servers", type=int, nargs="+", default=[1, 2], help="a phase per count, in order")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)
    try:
        results = asyncio.run(main_async(args))
    finally:
        Proc.stop_all()
    print(json.dumps(results, indent=2))
    ok = True
    for res in results:
        for tick in res["ticks"]:
            p99 = tick["late_s"]["p99_ms"] / 1000 if tick["late_s"] else float("inf")
            good = tick["missed"] == 0 and tick["twice"] == 0 and p99 <= TARGET_P99
            ok = ok and (good or res["servers"] < 2)
            log(
                f"{res['servers']} server(s), tick {tick['tick']}: {tick['fired']:,} fired, {tick['missed']} missed, "
                f"{tick['twice']} twice, p99 {p99:.3f}s {'ok' if good else 'over target'}"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
