"""The DBOS side of the durable-wait benchmarks: DBOS Transact (the ``dbos`` package) in this
process, its system database a fresh SQLite file in ``--db-dir``.

(d) ``fanout``: a parent workflow starts N no-op child workflows and collects their results in order.
(e) ``sleepers``: N workflows each ``DBOS.sleep(seconds)``; time until all are done, and the memory
    and processes the waiting costs (after 10 warm-up sleepers of 0.5 s, not measured).

DBOS has no server or worker processes: workflows run on threads of the process that launched it,
and with SQLite (no LISTEN/NOTIFY) a queue is polled and a polling handle's ``get_result`` re-reads
the status row. Both poll every second by default; ``--poll-s`` sets both. DBOS keeps SQLite's
defaults (rollback journal, synchronous=FULL: an fsync per commit); ``--wal`` gives it Hightide's
settings (WAL, synchronous=NORMAL) instead. ``settings`` in the output says which were used.
Prints one JSON object on stdout; logs go to stderr.

    python bench/dbos_side.py --db-dir DIR fanout --children 100 --repeats 5
    python bench/dbos_side.py --db-dir DIR sleepers --runs 1000 --seconds 2
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

try:
    from dbos import DBOS, Queue
except ImportError:  # a clear message instead of a traceback: the bench extra is optional
    print("dbos_side.py needs DBOS Transact: pip install -e '.[bench]' (or pip install dbos)", file=sys.stderr)
    raise SystemExit(2) from None

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Sampler, Usage, tree  # bench/ is not a package: found through sys.path


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] dbos: {message}", file=sys.stderr, flush=True)


# -- workflows ----------------------------------------------------------------------------------------
# Registered at import, before DBOS() and launch() as DBOS requires; the queue is declared in main()
# because its polling interval comes from the command line.
queue: Queue | None = None
poll_s = 1.0  # get_result polling of queued children (DBOS's default)


@DBOS.workflow()
def child(i: int) -> int:
    return i


@DBOS.workflow()
def parent(n: int, via: str) -> list[int]:
    if via == "queue":
        assert queue is not None
        handles = [queue.enqueue(child, i) for i in range(n)]
        return [h.get_result(polling_interval_sec=poll_s) for h in handles]
    # start_workflow runs the child at once on this process's thread pool; its handle wraps the
    # in-memory future, so get_result waits without polling.
    started = [DBOS.start_workflow(child, i) for i in range(n)]
    return [h.get_result() for h in started]


@DBOS.workflow()
def sleeper(seconds: float) -> int:
    DBOS.sleep(seconds)  # durable: the wake-up time is recorded, then the thread sleeps
    return 1


def use_wal() -> None:
    """Hightide's SQLite settings on every connection DBOS opens. A listener on the Engine class, as DBOS
    creates its engine inside launch(); this process opens no other database."""
    import sqlalchemy as sa

    def pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute("PRAGMA synchronous=NORMAL")

    sa.event.listen(sa.Engine, "connect", pragmas)


# -- measurements ------------------------------------------------------------------------------------
def run_fanout(children: int, repeats: int, via: str) -> dict[str, Any]:
    expected = list(range(children))
    walls: list[float] = []
    ok = True
    cpu = 0.0
    for i in range(repeats + 1):  # the first is a warm-up (imports, first connections): not reported
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        result = DBOS.start_workflow(parent, children, via).get_result()
        wall = time.perf_counter() - t0
        ok = ok and result == expected
        log(f"fanout {'warm-up' if i == 0 else i}: {wall:.3f}s ({'ok' if result == expected else 'WRONG RESULT'})")
        if i > 0:
            walls.append(wall)
            cpu += time.process_time() - cpu0
    return {
        "children": children,
        "repeats": repeats,
        "wall_s": [round(w, 4) for w in walls],
        "median_s": round(statistics.median(walls), 4),
        "cpu_ms_per_fanout": round(cpu * 1000 / repeats, 1),  # this process: DBOS and its database, all threads
        "result_ok": ok,
    }


def _start(workflow: Any, via: str, *args: Any) -> Any:
    if via == "queue":
        assert queue is not None
        return queue.enqueue(workflow, *args)
    return DBOS.start_workflow(workflow, *args)


def run_sleepers(runs: int, seconds: float, via: str, warmup: int = 10) -> dict[str, Any]:
    # Warm-up, not measured (as durable.py does for Hightide): a few sleepers through the same path.
    for h in [_start(sleeper, via, 0.5) for _ in range(warmup)]:
        h.get_result(polling_interval_sec=poll_s)
    # DBOS runs on threads of this process: its tree is the whole system (it starts no processes).
    before = Usage.of(tree(os.getpid()))
    sampler = Sampler({"dbos": os.getpid()})
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    sampler.start()
    handles = [_start(sleeper, via, seconds) for _ in range(runs)]
    start_s = time.perf_counter() - t0
    results = [h.get_result(polling_interval_sec=poll_s) for h in handles]
    total_s = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    peak = sampler.stop()["dbos"]
    log(f"sleepers: {runs} x sleep({seconds}) done {total_s:.3f}s after the first start (starting took {start_s:.3f}s)")
    return {
        "runs": runs,
        "seconds": seconds,
        "warmup_runs": warmup,
        "start_s": round(start_s, 4),
        "total_s": round(total_s, 4),
        "after_last_start_s": round(total_s - start_s, 4),
        "rss_before_mb": before.rss_mb,
        "rss_peak_during_wait_mb": peak.rss_mb,
        "rss_growth_mb": round(peak.rss_mb - before.rss_mb, 1),
        "processes_before": before.processes,
        "processes_during_wait": peak.processes,
        "threads_before": before.threads,
        "threads_peak_during_wait": peak.threads,
        "samples": sampler.samples,
        "cpu_ms_per_run": round(cpu * 1000 / runs, 2),  # this process (DBOS and its database), the sampler included
        "result_ok": results == [1] * runs,
    }


def main() -> None:
    global queue, poll_s
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db-dir", type=Path, required=True, help="where the fresh SQLite system database goes")
    ap.add_argument(
        "--via",
        choices=["queue", "start_workflow"],
        default="queue",
        help="start children / sleepers with queue.enqueue (default) or DBOS.start_workflow",
    )
    ap.add_argument(
        "--poll-s",
        type=float,
        default=0.05,
        help="queue polling interval and get_result polling interval, seconds (DBOS default: 1.0)",
    )
    ap.add_argument("--wal", action="store_true", help="SQLite in WAL mode, synchronous=NORMAL (as Hightide)")
    ap.add_argument("--timeout", type=float, default=600, help="give up (stacks to stderr, exit 1) after this long")
    sub = ap.add_subparsers(dest="command", required=True)
    fan = sub.add_parser("fanout")
    fan.add_argument("--children", type=int, default=100)
    fan.add_argument("--repeats", type=int, default=5)
    slp = sub.add_parser("sleepers")
    slp.add_argument("--runs", type=int, default=1000)
    slp.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()

    faulthandler.dump_traceback_later(args.timeout, exit=True)  # get_result has no timeout of its own
    args.db_dir.mkdir(parents=True, exist_ok=True)
    db = args.db_dir / f"dbos-{args.command}-{os.getpid()}.sqlite"
    for leftover in args.db_dir.glob(db.name + "*"):  # fresh: no workflows to recover from an old run
        leftover.unlink()
    poll_s = args.poll_s
    if args.wal:
        use_wal()
    # No concurrency limit: every enqueued workflow starts at the next poll, so the numbers measure DBOS's
    # polling and store, not a limit chosen here.
    queue = Queue("bench", polling_interval_sec=poll_s)
    DBOS(config={"name": "hightide-bench", "system_database_url": f"sqlite:///{db}", "log_level": "WARNING"})
    DBOS.launch()
    try:
        if args.command == "fanout":
            out = run_fanout(args.children, args.repeats, args.via)
        else:
            out = run_sleepers(args.runs, args.seconds, args.via)
    finally:
        DBOS.destroy()
    settings = {
        "store": "SQLite, " + ("WAL, synchronous=NORMAL" if args.wal else "rollback journal, synchronous=FULL"),
        "via": args.via,
        "queue": "no concurrency limit",
        "queue_polling_interval_s": poll_s if args.via == "queue" else None,
        "get_result_polling_interval_s": poll_s if args.via == "queue" else "none (in-memory future)",
        "db": str(db),
    }
    result = {"system": "dbos", "dbos_version": metadata.version("dbos"), "bench": args.command, "settings": settings}
    print(json.dumps({**result, **out}))


if __name__ == "__main__":
    main()
