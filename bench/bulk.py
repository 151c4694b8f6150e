"""Bulk cancel against its peer, the same runs cancelled one by one: a real ``hightide server`` on
SQLite and on a fresh PostgreSQL database (skipped when none answers), delayed runs made in batches,
then ``runs.bulk.cancel(tag=...)`` of ``--runs`` of them and ``runs.cancel`` of ``--single`` others.

    python bench/bulk.py                  # 5,000 runs in bulk, 300 one by one, on both backends
    python bench/bulk.py --runs 1000 --backend sqlite
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
from common import Proc, child_env, free_port, log, wait_until

from hightide import Client

PROJECT = Path(__file__).parent / "project"
CLI = [sys.executable, "-c", "from hightide.cli.main import main; main()"]
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


@contextmanager
def database(backend: str, tmp: Path) -> Iterator[str | None]:
    if backend == "sqlite":
        yield str(tmp / "bulk.db")
        return
    name = f"hightide_bench_bulk_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        yield None
        return
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def measure(database_url: str, tmp: Path, runs: int, single: int) -> dict[str, float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Proc(
        "server",
        [*CLI, "server", "--database-url", database_url, "--port", str(port)],
        cwd=tmp,
        env=child_env(),
        log_dir=tmp,
    )
    try:
        assert wait_until(lambda: _up(url), timeout=60), server.output()
        key = _key(database_url)
        worker = Proc(
            "worker",
            [*CLI, "worker", "--concurrency", "1"],
            cwd=PROJECT,
            env=child_env(HIGHTIDE_API_URL=url, HIGHTIDE_SECRET_KEY=key),
            log_dir=tmp,
        )
        worker.wait_for_output("registered", timeout=60)
        worker.stop()  # the tasks stay registered; nothing claims the runs
        with Client(api_url=url, secret_key=key) as client:
            bulk_tag, single_tag = f"bulk-{uuid.uuid4().hex[:6]}", f"one-{uuid.uuid4().hex[:6]}"
            for tag, count in ((bulk_tag, runs), (single_tag, single)):
                for start in range(0, count, 1000):
                    item = {"task": "noop", "payload": {}, "options": {"delay": "1h", "tags": [tag]}}
                    client.batch_trigger([item] * min(1000, count - start))
            began = time.perf_counter()
            job = client.runs.bulk.wait(client.runs.bulk.cancel(tag=bulk_tag).id, timeout=600, interval=0.05)
            bulk_seconds = time.perf_counter() - began
            assert job.succeeded == runs, job
            ids = [r.id for r in client.runs.list(tag=single_tag, page_size=1000)]
            began = time.perf_counter()
            for run_id in ids:
                client.runs.cancel(run_id)
            single_seconds = time.perf_counter() - began
        bulk_rate, single_rate = runs / bulk_seconds, single / single_seconds
        return {
            "bulk_per_s": round(bulk_rate),
            "one_by_one_per_s": round(single_rate),
            "ratio": round(bulk_rate / single_rate, 1),
        }
    finally:
        Proc.stop_all()


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _key(database_url: str) -> str:
    out = subprocess.run(
        [*CLI, "keys", "create", "--env", "dev", "--database-url", database_url],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5000, help="runs cancelled by one bulk action")
    parser.add_argument("--single", type=int, default=300, help="runs cancelled one by one (the peer)")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    results: dict[str, object] = {}
    for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
        with tempfile.TemporaryDirectory() as tmp, database(backend, Path(tmp)) as url:
            if url is None:
                log(f"{backend}: no PostgreSQL at {PG_URL}; skipped")
                continue
            log(f"{backend}: {args.runs:,} runs in one bulk cancel, {args.single:,} cancelled one by one")
            results[backend] = measure(url, Path(tmp), args.runs, args.single)
            log(f"{backend}: {results[backend]}")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
