"""The Hightide side: ``hightide server`` (SQLite) and one ``hightide worker --concurrency 2``
(a supervisor and 2 runner processes), both with default settings otherwise.

(a) ``await client.trigger("noop")`` in a loop; batched: ``client.batch_trigger`` of 500 items.
(b) enqueue everything with no worker running, start the worker, time until every run is finished.
(c) ``client.trigger`` at a steady rate; latency = the task's own ``time.time()`` at start (its
    output) minus the client's ``time.time()`` just before ``trigger``.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from common import (
    BENCH_DIR,
    Proc,
    Sizes,
    batch_sizes,
    child_env,
    free_port,
    latency_summary,
    log,
    rate_entry,
    split_cpu_seconds,
    tree_cpu_seconds,
)

CLI = "from hightide.cli.main import main; main()"
TASK = "noop"
UNFINISHED = ["PENDING_VERSION", "DELAYED", "QUEUED", "EXECUTING"]


class Hightide:
    """A server and (when started) a worker in a temporary directory."""

    def __init__(
        self, workdir: Path, profile_dir: Path | None = None, name: str = "rates", worker_args: list[str] | None = None
    ) -> None:
        self.name = name
        self.worker_args = list(worker_args or [])
        self.workdir = workdir / name
        self.workdir.mkdir(parents=True)
        self.project = self.workdir / "project"
        shutil.copytree(BENCH_DIR / "project", self.project, ignore=shutil.ignore_patterns("__pycache__", ".hightide"))
        self.db = self.workdir / "hightide.db"
        self.port = free_port()
        self.api_url = f"http://127.0.0.1:{self.port}"
        self.profile_dir = profile_dir
        self.key = ""
        self.server: Proc | None = None
        self.worker: Proc | None = None
        self._workers_started = 0

    def _cmd(self, name: str, *args: str) -> list[str]:
        base = [sys.executable, "-c", CLI, *args]
        if self.profile_dir is None:
            return base
        # py-spy samples the process and its children (the worker's runners) as collapsed stacks
        # (flamegraph.pl or speedscope read them); BENCH_PYSPY_ARGS adds options, e.g. "--idle".
        pyspy = shutil.which("py-spy")
        if pyspy is None:
            raise RuntimeError("--profile needs py-spy: pip install py-spy")
        out = self.profile_dir / f"{self.name}-{name}.txt"
        extra = os.environ.get("BENCH_PYSPY_ARGS", "").split()
        return [
            pyspy,
            "record",
            "--subprocesses",
            "--rate",
            "200",
            "--format",
            "raw",
            *extra,
            "-o",
            str(out),
            "--",
            *base,
        ]

    def start_server(self) -> None:
        made = subprocess.run(
            [sys.executable, "-c", CLI, "keys", "create", "--env", "dev", "--database-url", str(self.db)],
            cwd=self.workdir,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        found = re.search(r"ht_dev_\S+", made.stdout)
        if not found:
            raise RuntimeError(f"no key in `hightide keys create` output: {made.stdout!r} {made.stderr!r}")
        self.key = found.group(0)
        args = self._cmd("server", "server", "--database-url", str(self.db), "--port", str(self.port))
        self.server = Proc(
            "hightide-server",
            args,
            cwd=self.workdir,
            env=child_env(),
            log_dir=self.workdir,
            wrapper=bool(self.profile_dir),
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.api_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if not self.server.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{self.server.output()[-3000:]}")
            time.sleep(0.05)

    def start_registered(self) -> None:
        """The server, with the project's tasks registered and no worker running: a worker
        registers them, then stops (a task must be registered before it can be triggered)."""
        self.start_server()
        self.start_worker().wait_for_output("connected to", 60)
        self.stop_worker()

    def start_worker(self) -> Proc:
        self._workers_started += 1
        name = f"hightide-worker-{self._workers_started}"
        env = child_env(HIGHTIDE_API_URL=self.api_url, HIGHTIDE_SECRET_KEY=self.key)
        args = self._cmd(name, "worker", "--concurrency", "2", *self.worker_args)
        self.worker = Proc(name, args, cwd=self.project, env=env, log_dir=self.workdir, wrapper=bool(self.profile_dir))
        return self.worker

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop(grace=15)
            self.worker = None

    def close(self) -> None:
        self.stop_worker()
        if self.server is not None:
            self.server.stop(grace=15 if self.profile_dir else 10)
            self.server = None


async def _unfinished(client: Any) -> int:
    """0 when no run is left unfinished (a cheap query: one row at most)."""
    return len([r async for r in client.runs.list(status=UNFINISHED, page_size=1, limit=1)])


async def _wait_finished(client: Any, timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not await _unfinished(client):
            return True
        await asyncio.sleep(interval)
    return False


async def _runs_since(client: Any, since: float) -> dict[str, Any]:
    created_from = datetime.fromtimestamp(since, UTC)
    return {run.id: run async for run in client.runs.list(created_from=created_from, page_size=1000)}


def _ts(value: datetime | None) -> float:
    return float("nan") if value is None else value.timestamp()


async def run_async(
    sizes: Sizes, workdir: Path, profile_dir: Path | None = None, worker_args: list[str] | None = None
) -> dict[str, Any]:
    from hightide import AsyncClient

    ht = Hightide(workdir, profile_dir, worker_args=worker_args)
    out: dict[str, Any] = {
        "system": "hightide",
        "setup": {
            "server": "hightide server --database-url <tmp>/hightide.db (SQLite)",
            "worker": "1 hightide worker --concurrency 2 (supervisor + 2 runner processes, runs_per_process=100 default)"
            + (f", extra options: {' '.join(worker_args)}" if worker_args else ""),
            "batch_api": f"client.batch_trigger([{{'task': 'noop', 'payload': None}}] x {sizes.batch_size})",
        },
    }
    client = None
    try:
        ht.start_registered()
        client = AsyncClient(api_url=ht.api_url, secret_key=ht.key)
        phase_start = time.time() - 1

        # -- (a) trigger rate, no worker running ------------------------------------------------
        ids: list[str] = []
        for _ in range(sizes.warmup):  # opens the HTTP connection; queued, not timed
            ids.append((await client.trigger(TASK, None)).id)
        n_single = sizes.single - sizes.warmup
        t0 = time.perf_counter()
        for _ in range(n_single):
            ids.append((await client.trigger(TASK, None)).id)
        single_s = time.perf_counter() - t0
        out["trigger_single"] = rate_entry(n_single, single_s)
        log(f"hightide: trigger() x{n_single}: {n_single / single_s:,.0f}/s")

        t0 = time.perf_counter()
        for n in batch_sizes(sizes.batched, sizes.batch_size):
            batch = await client.batch_trigger([{"task": TASK, "payload": None} for _ in range(n)])
            ids.extend(batch.ids)
        batch_s = time.perf_counter() - t0
        out["trigger_batch"] = rate_entry(sizes.batched, batch_s, batch_size=sizes.batch_size)
        log(f"hightide: batch_trigger() x{sizes.batched}: {sizes.batched / batch_s:,.0f}/s")

        # -- (b) drain --------------------------------------------------------------------------
        assert len(set(ids)) == sizes.drain, (len(set(ids)), sizes.drain)
        assert ht.server is not None
        server_cpu = tree_cpu_seconds(ht.server.pid)
        spawn_at = time.time()
        worker = ht.start_worker()
        finished = await _wait_finished(client, sizes.drain_timeout)
        wall = time.time() - spawn_at
        supervisor, runners = split_cpu_seconds(worker.pid)
        cpu = {"server": tree_cpu_seconds(ht.server.pid) - server_cpu, "supervisor": supervisor, "runners": runners}
        runs = await _runs_since(client, phase_start)
        mine = [runs[i] for i in ids if i in runs]
        done = [r for r in mine if r.is_finished]
        ok = [r for r in done if r.is_success]
        starts = [float(r.output) for r in ok]
        ends = [_ts(r.finished_at) for r in done if r.finished_at]
        claims = [_ts(r.started_at) for r in done if r.started_at]
        window = (max(ends) - min(starts)) if starts else float("nan")
        out["drain"] = {
            "n": len(ids),
            "done": len(done),
            "failed": len(done) - len(ok),
            "complete": finished and len(done) == len(ids),
            "window_seconds": round(window, 3),
            "rate": round(len(done) / window, 1) if starts else 0.0,
            "server_window_seconds": round(max(ends) - min(claims), 3) if claims else None,
            "wall_seconds_incl_worker_start": round(wall, 3),
            "rate_incl_worker_start": round(len(done) / wall, 1),
            # CPU per finished run, worker start-up included (the supervisor; its runner processes)
            "cpu_ms_per_run": {k: round(v * 1000 / max(len(done), 1), 2) for k, v in cpu.items()},
        }
        log(
            f"hightide: drained {len(done)}/{len(ids)} in {window:.2f}s (+startup: {wall:.2f}s): {len(done) / window:,.0f}/s"
        )

    finally:
        if client is not None:
            await client.aclose()
        ht.close()
    out["latency"] = await _latency(sizes, workdir, profile_dir, worker_args)
    return out


async def _latency(
    sizes: Sizes, workdir: Path, profile_dir: Path | None, worker_args: list[str] | None
) -> dict[str, Any]:
    """(c) on a fresh server and worker (an empty database, no backlog left by (b)), after a few
    warm-up runs."""
    from hightide import AsyncClient

    ht = Hightide(workdir, profile_dir, name="latency", worker_args=worker_args)
    client = None
    try:
        ht.start_server()
        ht.start_worker().wait_for_output("connected to", 60)
        client = AsyncClient(api_url=ht.api_url, secret_key=ht.key)
        for _ in range(sizes.warmup):
            await client.trigger(TASK, None)
        await _wait_finished(client, sizes.settle_timeout, 0.05)
        await asyncio.sleep(0.5)
        n = int(sizes.latency_rate * sizes.latency_seconds)
        sent: list[tuple[str, float, float]] = []
        lat_start = time.time() - 1
        begin = time.monotonic() + 0.1
        for i in range(n):
            target = begin + i / sizes.latency_rate
            delay = target - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            t_send = time.time()
            handle = await client.trigger(TASK, None)
            sent.append((handle.id, t_send, time.time()))
        actual_rate = n / (time.monotonic() - begin)
        await _wait_finished(client, sizes.settle_timeout)
        runs = await _runs_since(client, lat_start)
        got = [(runs[x], t, t_ack) for x, t, t_ack in sent if x in runs]
        lat = [float(r.output) - t for r, t, _ in got if r.is_success]
        claim = [_ts(r.started_at) - t for r, t, _ in got if r.started_at]
        fin = [_ts(r.finished_at) - t for r, t, _ in got if r.finished_at]
        call = [t_ack - t for _, t, t_ack in sent]
        result: dict[str, Any] = {
            "rate_target": sizes.latency_rate,
            "rate_actual": round(actual_rate, 1),
            "seconds": sizes.latency_seconds,
            "sent": n,
            "done": sum(1 for r, _, _ in got if r.is_finished),
            "start": latency_summary(lat),
            "claimed_server_started_at": latency_summary(claim),
            "finish": latency_summary(fin),
            "trigger_call": latency_summary(call),
            # per run, in send order: [seconds since the first send, trigger->start ms]
            "samples": [
                [round(t - sent[0][1], 3), round((float(r.output) - t) * 1000, 2)] for r, t, _ in got if r.is_success
            ],
        }
        log(f"hightide: trigger->start p50 {result['start']['p50_ms']} ms, p99 {result['start']['p99_ms']} ms")
        return result
    finally:
        if client is not None:
            await client.aclose()
        ht.close()


def run(
    sizes: Sizes, workdir: Path, profile_dir: Path | None = None, worker_args: list[str] | None = None
) -> dict[str, Any]:
    return asyncio.run(run_async(sizes, workdir, profile_dir, worker_args))
