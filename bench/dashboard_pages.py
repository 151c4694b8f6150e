"""The dashboard's Runs page over 1,000,000 finished runs, on SQLite and on PostgreSQL.

The database is filled with bulk inserts into the store's own tables (``hightide.store.schema``):
``--runs`` finished runs created over 30 days, spread over the ``default`` project's dev (80 %),
staging (15 %) and prod (5 %) environments; 20 tasks (a few much busier than the rest); statuses
mostly COMPLETED (90 %) with FAILED (6 %), CANCELED (2 %) and the other final ones (0.5 % each);
1-3 tags from a vocabulary of 100. Then a real ``hightide server`` serves it, a client signs in with
a login link from ``hightide users login-link``, and each case is fetched ``--requests`` times over
HTTP (keep-alive, after 3 warm-up requests): the whole server-side render, session check included.

Cases, all on ``/projects/default/env/dev/runs``:

- first:     the first page (50 runs, newest first);
- filtered:  ``?status=FAILED&task=send-email&tag=customer:3`` (the issue's status + task + tag; the
             busiest task, a full page of matches);
- next:      the second page, by the cursor of the first page's "Older runs" link;
- and, beyond the issue's three: filtered-next (the second page of the filtered list), filtered-rare
  (``?status=FAILED&task=export-pdf&tag=plan:7``: fewer matches than a page), status (COMPLETED), status-none
  (``?status=EXECUTING``: no run matches, the whole environment is looked through), tag (a tag alone),
  task (a task alone), deep (a cursor 15 days back).

After the build, PostgreSQL gets a ``VACUUM ANALYZE`` (autovacuum would have run on a table
that grew over 30 days); SQLite gets nothing (the store never runs ``ANALYZE``).

For each case the list query the store runs is captured (a SQLAlchemy ``before_cursor_execute``
listener around ``store.runs.list_runs``) and explained: ``EXPLAIN QUERY PLAN`` on SQLite,
``EXPLAIN (ANALYZE, BUFFERS)`` on PostgreSQL. The query alone is timed in-process too.

The SQLite file is built once per size and kept in ``--cache-dir`` (the store migrates it when it is
opened, so a new migration is applied to the cached file); the PostgreSQL database
(``hightide_bench_dashboard_<runs>``) is built each time and dropped at the end unless ``--keep-postgres``.

    python bench/dashboard_pages.py                               # both backends, 1,000,000 runs
    python bench/dashboard_pages.py --backend sqlite --runs 100000 --requests 20
    python bench/dashboard_pages.py --backend postgresql --keep-postgres --plans-out /tmp/plans.txt
    python bench/dashboard_pages.py --backend postgresql --pg-no-parallel   # no parallel query plans
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from html import unescape as html_unescape
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
from common import Proc, child_env, free_port, log, percentile
from sqlalchemy import event

from hightide.core.ids import _b32
from hightide.engine.environments import bootstrap
from hightide.store import Store, open_store
from hightide.store import schema as t
from hightide.store.pages import encode_cursor
from hightide.store.records import RunFilter

CLI = "from hightide.cli.main import main; main()"
TARGET_MS = 100.0
PAGE = 50
DAY = 86400.0
ENVS = (("dev", 0.80), ("staging", 0.15), ("prod", 0.05))
TASKS = [
    "send-email", "sync-customer", "resize-image", "charge-invoice", "generate-report", "import-csv",
    "webhook-deliver", "index-document", "refresh-token", "notify-slack", "export-pdf", "score-lead",
    "transcode-video", "backup-database", "crawl-page", "summarise-text", "geocode-address",
    "reconcile-payments", "cleanup-sessions", "train-model",
]  # fmt: skip
TASK_WEIGHTS = [1 / (i + 1) for i in range(len(TASKS))]  # Zipf: send-email is 20x train-model
STATUSES = {
    "COMPLETED": 0.90, "FAILED": 0.06, "CANCELED": 0.02, "CRASHED": 0.005,
    "SYSTEM_FAILURE": 0.005, "TIMED_OUT": 0.005, "EXPIRED": 0.005,
}  # fmt: skip
TAGS = [f"{kind}:{i}" for kind in ("customer", "region", "plan", "team", "source") for i in range(20)]
FILTER = {"status": "FAILED", "task": "send-email", "tag": "customer:3"}  # the busiest task: 28 % of runs
RARE = {"status": "FAILED", "task": "export-pdf", "tag": "plan:7"}  # task #11 of 20: 2.5 % of runs


# -- building the database ------------------------------------------------------------------------
def _row(env_id: str, run_id: str, task: str, status: str, created: float) -> dict[str, Any]:
    started = created + 0.01
    finished = started + 0.05 + (hash(run_id) % 1000) / 250
    return {
        "id": run_id,
        "environment_id": env_id,
        "task_id": task,
        "queue": f"task/{task}",
        "status": status,
        "payload": '{"n": 1}',
        "output": '"ok"' if status == "COMPLETED" else None,
        "error": None if status == "COMPLETED" else '{"name": "Error", "message": "it went wrong"}',
        "tags": "[]",  # set below
        "metadata": "{}",
        "idempotency_key": None,
        "idempotency_key_expires_at": None,
        "concurrency_key": None,
        "priority": 0.0,
        "max_attempts": 3,
        "retry": "{}",
        "max_duration": None,
        "attempt_count": 1,
        "delay_until": None,
        "ttl_expires_at": None,
        "available_at": created,
        "rank_at": created,
        "lease_expires_at": None,
        "worker_id": None,
        "version": "20261101.1",
        "parent_run_id": None,
        "root_run_id": None,
        "created_at": created,
        "updated_at": finished,
        "started_at": started,
        "finished_at": finished,
        "resuming": False,
        "executions": 1,
        "trace_id": None,
        "span_id": None,
        "parent_span_id": None,
        "claim_id": None,
    }


def build(store: Store, runs: int, now: float, chunk: int = 20000) -> None:
    """``runs`` finished runs over the 30 days before ``now``, inserted oldest first in chunks."""
    rng = random.Random(7)
    bootstrap(store, now)
    env_ids = []
    for slug, _ in ENVS:
        env = store.environments.get_environment("default", slug)
        assert env is not None
        env_ids.append(env.id)
    created = sorted(rng.uniform(now - 30 * DAY, now - 60) for _ in range(runs))
    statuses, weights = list(STATUSES), list(STATUSES.values())
    started = time.monotonic()
    for start in range(0, runs, chunk):
        rows, tags = [], []
        part = created[start : start + chunk]
        envs = rng.choices(env_ids, [share for _, share in ENVS], k=len(part))
        tasks = rng.choices(TASKS, TASK_WEIGHTS, k=len(part))
        states = rng.choices(statuses, weights, k=len(part))
        for i, at in enumerate(part):
            run_id = f"run_{_b32(int(at * 1000), 10)}{_b32(start + i, 12)}"
            row = _row(envs[i], run_id, tasks[i], states[i], at)
            mine = rng.sample(TAGS, rng.randint(1, 3))
            row["tags"] = json.dumps(mine)
            rows.append(row)
            tags += [{"run_id": run_id, "tag": tag, "environment_id": envs[i]} for tag in mine]
        _insert(store, t.runs, rows)
        _insert(store, t.run_tags, tags)
        done = start + len(part)
        if done % 200000 == 0 or done == runs:
            log(f"  {done:,} runs inserted ({done / (time.monotonic() - started):,.0f}/s)")


def _insert(store: Store, table: Any, rows: list[dict[str, Any]]) -> None:
    """Rows into one of the store's tables, in one transaction: executemany of plain tuples on
    SQLite, ``COPY`` on PostgreSQL (SQLAlchemy's own executemany does 10,000 runs/s here)."""
    names = [c.name for c in table.c]
    values = [tuple(row[n] for n in names) for row in rows]
    with store.engine.begin() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        if store.dialect == "sqlite":
            marks = ", ".join("?" * len(names))
            raw.executemany(f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})", values)
        else:
            with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
                for value in values:
                    copy.write_row(value)


# -- the cases ------------------------------------------------------------------------------------
def _cursor_of(html: str) -> str | None:
    found = re.search(r'href="[^"]*[?&;]cursor=([^"&]+)[^"]*" rel="next"', html)
    return unquote(html_unescape(found.group(1))) if found else None


def cases(client: httpx.Client, base: str, now: float) -> dict[str, dict[str, str]]:
    first = client.get(base).text
    filtered = client.get(base, params=FILTER).text
    cursor, filtered_cursor = _cursor_of(first), _cursor_of(filtered)
    if cursor is None:
        raise RuntimeError("the first page has no 'Older runs' link: too few runs")
    out: dict[str, dict[str, str]] = {"first": {}, "filtered": dict(FILTER), "next": {"cursor": cursor}}
    if filtered_cursor is not None:  # fewer than 50 matches in a small database
        out["filtered-next"] = {**FILTER, "cursor": filtered_cursor}
    out["filtered-rare"] = dict(RARE)
    out["status"] = {"status": "COMPLETED"}
    out["status-none"] = {"status": "EXECUTING"}
    out["tag"] = {"tag": FILTER["tag"]}
    out["task"] = {"task": FILTER["task"]}
    out["deep"] = {"cursor": encode_cursor(now - 15 * DAY, "run_~")}
    return out


def _filter(params: dict[str, str]) -> tuple[RunFilter, str | None]:
    flt = RunFilter(
        statuses=(params["status"],) if params.get("status") else (),
        task_ids=(params["task"],) if params.get("task") else (),
        tag=params.get("tag") or None,
    )
    return flt, params.get("cursor")


@contextmanager
def captured(store: Store) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "ORDER BY runs.created_at DESC" in statement:
            seen.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", on_execute)


def explain(store: Store, env_id: str, params: dict[str, str]) -> tuple[str, str]:
    """The list query the store runs for ``params`` (with its parameters) and its plan."""
    flt, cursor = _filter(params)
    with captured(store) as seen:
        store.runs.list_runs(env_id, flt, PAGE, cursor)
    statement, parameters = seen[-1]
    prefix = "EXPLAIN QUERY PLAN " if store.dialect == "sqlite" else "EXPLAIN (ANALYZE, BUFFERS) "
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(prefix + statement, parameters).all()
    if store.dialect == "sqlite":  # (id, parent, notused, detail): indent by depth
        depth: dict[int, int] = {0: 0}
        lines = []
        for node, parent, _, detail in rows:
            depth[node] = depth.get(parent, 0) + 1
            lines.append("  " * (depth[node] - 1) + str(detail))
        plan = "\n".join(lines)
    else:
        plan = "\n".join(str(row[0]) for row in rows)
    columns = statement[len("SELECT ") : statement.index(" \nFROM")]
    shown = statement.replace(columns, f"runs.<{columns.count(',') + 1} columns>", 1)
    shown += "\n  -- parameters: " + repr(parameters)
    return shown, plan


def query_ms(store: Store, env_id: str, params: dict[str, str], n: int) -> float:
    flt, cursor = _filter(params)
    times = []
    for i in range(n + 2):
        t0 = time.perf_counter()
        store.runs.list_runs(env_id, flt, PAGE, cursor)
        if i >= 2:
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def http_ms(client: httpx.Client, url: str, params: dict[str, str], n: int) -> tuple[list[float], int]:
    times, rows = [], 0
    for i in range(n + 3):
        t0 = time.perf_counter()
        answer = client.get(url, params=params)
        elapsed = (time.perf_counter() - t0) * 1000
        if answer.status_code != 200:
            raise RuntimeError(f"{url} {params}: HTTP {answer.status_code}: {answer.text[:500]}")
        if i >= 3:
            times.append(elapsed)
        rows = answer.text.count('<td data-label="Status">')
    return times, rows


# -- one backend ----------------------------------------------------------------------------------
def sign_in(url: str, database_url: str, workdir: Path) -> httpx.Client:
    command = [sys.executable, "-c", CLI, "users", "login-link", "admin@localhost"]
    done = subprocess.run(
        [*command, "--database-url", database_url, "--public-url", url],
        cwd=workdir,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    link = re.search(r"^http://\S+/login\?token=htl_\S+$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or link is None:
        raise RuntimeError(f"no login link: {done.stdout} {done.stderr}")
    client = httpx.Client(base_url=url, follow_redirects=False, timeout=120)
    if client.get(link.group(0)).status_code != 303:
        raise RuntimeError("the login link did not sign in")
    return client


def start_server(database_url: str, workdir: Path) -> tuple[Proc, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-c", CLI, "server", "--database-url", database_url, "--port", str(port)]
    server = Proc("hightide-server", args, cwd=workdir, env=child_env(), log_dir=workdir)
    deadline = time.monotonic() + 600  # a migration of a big cached database may take a while
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return server, url
        except httpx.TransportError:
            pass
        if not server.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start:\n{server.output()[-3000:]}")
        time.sleep(0.1)


def bench_backend(
    database_url: str, fresh: bool, runs: int, requests: int, workdir: Path, only: set[str] | None = None
) -> dict[str, Any]:
    store = open_store(database_url)
    try:
        t0 = time.monotonic()
        store.migrate()
        migrated_s = time.monotonic() - t0
        now = time.time()
        if fresh:
            log(f"building {runs:,} runs in {store.dialect}")
            t0 = time.monotonic()
            build(store, runs, now)
            log(f"built in {time.monotonic() - t0:.0f} s")
            meta = {"built_at": now}
            if store.dialect == "postgresql":
                # What autovacuum does to a table that grew over 30 days: statistics, and the
                # visibility map that index-only scans need. The SQLite store never analyses.
                _pg_admin(database_url, "VACUUM ANALYZE")
            else:
                Path(str(store.seam.path) + ".json").write_text(json.dumps(meta))  # type: ignore[attr-defined]
        else:
            log(f"reusing the cached database (migrations took {migrated_s:.1f} s)")
        env = store.environments.get_environment("default", "dev")
        assert env is not None
        built_at = now
        if store.dialect == "sqlite":
            built_at = json.loads(Path(str(store.seam.path) + ".json").read_text())["built_at"]  # type: ignore[attr-defined]
        server, url = start_server(database_url, workdir)
        try:
            client = sign_in(url, database_url, workdir)
            base = "/projects/default/env/dev/runs"
            out: dict[str, Any] = {"dialect": store.dialect, "runs": runs, "migrate_seconds": round(migrated_s, 2)}
            out["cases"] = {}
            for name, params in cases(client, base, built_at).items():
                if only and name not in only:
                    continue
                times, rows = http_ms(client, base, params, requests)
                statement, plan = explain(store, env.id, params)
                out["cases"][name] = {
                    "params": params,
                    "rows": rows,
                    "median_ms": round(statistics.median(times), 1),
                    "p95_ms": round(percentile(times, 95), 1),
                    "query_ms": round(query_ms(store, env.id, params, min(requests, 20)), 2),
                    "sql": statement,
                    "plan": plan,
                }
                c = out["cases"][name]
                log(f"  {store.dialect} {name}: {c['median_ms']} / {c['p95_ms']} ms, query {c['query_ms']} ms")
            client.close()
            return out
        finally:
            server.stop(grace=10)
    finally:
        store.close()


def _pg_admin(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


def run_backend(backend: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    if backend == "sqlite":
        args.cache_dir.mkdir(parents=True, exist_ok=True)
        path = args.cache_dir / f"runs-{args.runs}.db"
        fresh = not Path(str(path) + ".json").exists()
        if fresh:
            for leftover in args.cache_dir.glob(f"runs-{args.runs}.db*"):
                leftover.unlink()
        return bench_backend(str(path), fresh, args.runs, args.requests, workdir, args.only)
    from sqlalchemy.engine import make_url

    name = f"hightide_bench_dashboard_{args.runs}"
    url = make_url(args.postgres_url).set(database=name).render_as_string(hide_password=False)
    exists = False
    import psycopg

    with psycopg.connect(args.postgres_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None
    fresh = not (exists and args.keep_postgres)
    if fresh:
        _pg_admin(args.postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _pg_admin(args.postgres_url, f'CREATE DATABASE "{name}"')
    setting = (
        "SET max_parallel_workers_per_gather = 0" if args.pg_no_parallel else "RESET max_parallel_workers_per_gather"
    )
    _pg_admin(args.postgres_url, f'ALTER DATABASE "{name}" {setting}')  # for the connections opened from now on
    try:
        return bench_backend(url, fresh, args.runs, args.requests, workdir, args.only)
    finally:
        if not args.keep_postgres:
            _pg_admin(args.postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- the report -----------------------------------------------------------------------------------
def table(results: list[dict[str, Any]]) -> str:
    header = ["backend", "case", "rows", "median ms", "p95 ms", "query ms", f"< {TARGET_MS:g} ms"]
    lines = []
    for res in results:
        for name, c in res["cases"].items():
            ok = c["median_ms"] < TARGET_MS and c["p95_ms"] < TARGET_MS
            timed = [f"{c['median_ms']:.1f}", f"{c['p95_ms']:.1f}", f"{c['query_ms']:.2f}"]
            lines.append([res["dialect"], name, str(c["rows"]), *timed, "yes" if ok else "NO"])
    widths = [max(len(x[i]) for x in [header, *lines]) for i in range(len(header))]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    return "\n".join(out)


def plans(results: list[dict[str, Any]]) -> str:
    out = []
    for res in results:
        for name, c in res["cases"].items():
            out.append(f"== {res['dialect']} / {name} {c['params']}\n{c['sql']}\n-- plan:\n{c['plan']}\n")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--runs", type=int, default=1_000_000, help="finished runs in the database (all environments)")
    parser.add_argument("--requests", type=int, default=50, help="timed requests per case")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/hightide-bench-dashboard"))
    parser.add_argument(
        "--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test", help="a database to connect to first"
    )
    parser.add_argument("--keep-postgres", action="store_true", help="keep (and reuse) the PostgreSQL database")
    parser.add_argument(
        "--pg-no-parallel",
        action="store_true",
        help="ALTER DATABASE ... SET max_parallel_workers_per_gather = 0 (no parallel plans) before measuring",
    )
    parser.add_argument("--cases", help="only these cases, comma-separated (default: all)")
    parser.add_argument("--plans-out", type=Path, help="also write the SQL and plans to this file")
    parser.add_argument("--json-out", type=Path, help="write every measurement as JSON")
    args = parser.parse_args(argv)
    args.only = set(args.cases.split(",")) if args.cases else None
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results = []
    with tempfile.TemporaryDirectory(prefix="hightide-bench-dash-") as tmp:
        try:
            for backend in backends:
                results.append(run_backend(backend, args, Path(tmp)))
        finally:
            Proc.stop_all()
    print(plans(results))
    print(
        f"The Runs page over {args.runs:,} runs ({int(args.runs * ENVS[0][1]):,} in dev), {args.requests} requests per case"
    )
    print(table(results))
    if args.plans_out:
        args.plans_out.write_text(plans(results))
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
