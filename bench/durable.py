"""Durable execution: Hightide vs DBOS Transact, both on SQLite, on this machine, in one run.

(d) fan-out: a parent triggers 100 no-op children with ``batch_trigger_and_wait`` and returns their
    outputs; one warm-up, then 5 repeats. Wall = the parent's ``finished_at - created_at`` (server
    clock), and as the client saw it (``trigger`` to a poll seeing it finished); median.
(e) sleepers: 1,000 runs each ``wait.for_(seconds=2)`` with the checkpoint threshold at 1 s (so each
    suspends and is replayed), after 10 warm-up sleepers. Total = last ``finished_at`` - first
    ``created_at``; every 0.1 s from the trigger until all finished, the processes of the worker tree and
    the RSS of the whole Hightide tree (server, worker, runners).

Hightide: ``hightide server`` (a fresh SQLite file per benchmark) and ``hightide worker --concurrency 2``
with ``HIGHTIDE_CHECKPOINT_THRESHOLD=1``, as in hightide_side.py. DBOS: ``dbos_side.py`` (child
workflows / ``DBOS.sleep``), as shipped (SQLite defaults: rollback journal, synchronous=FULL) and with
``--wal`` (Hightide's settings: WAL, synchronous=NORMAL; the fair comparison).

    python bench/durable.py                    # 3 rounds of everything, ~3 minutes
    python bench/durable.py --rounds 1 --only hightide

Prints a table and writes bench/results/durable.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BENCH_DIR,
    CpuWatch,
    Proc,
    Sampler,
    Usage,
    child_env,
    clean_up,
    latency_summary,
    log,
    split_cpu_seconds,
    tree,
    tree_cpu_seconds,
)
from hightide_side import Hightide

UNFINISHED = ["PENDING_VERSION", "DELAYED", "QUEUED", "EXECUTING", "WAITING"]
TARGET_FANOUT_S = 0.5
TARGET_SLEEPERS_S = 4.0
TARGET_RSS_GROWTH_MB = 50.0
WARMUP_SLEEPERS = 10


@dataclass(frozen=True)
class Setup:
    """How the Hightide side runs: the worker's checkpoint threshold and extra options, py-spy or not."""

    threshold: float = 1.0
    worker_args: tuple[str, ...] = ()
    profile: Path | None = None


class DurableHightide(Hightide):
    """hightide_side's server and worker, the worker with a checkpoint threshold."""

    def __init__(self, workdir: Path, name: str, setup: Setup) -> None:
        super().__init__(workdir, setup.profile, name=name, worker_args=list(setup.worker_args))
        self.threshold = setup.threshold

    def start_worker(self) -> Proc:
        env = child_env(
            HIGHTIDE_API_URL=self.api_url,
            HIGHTIDE_SECRET_KEY=self.key,
            HIGHTIDE_CHECKPOINT_THRESHOLD=str(self.threshold),
        )
        args = self._cmd("worker", "worker", "--concurrency", "2", *self.worker_args)
        wrapped = self.profile_dir is not None
        self.worker = Proc("hightide-worker", args, cwd=self.project, env=env, log_dir=self.workdir, wrapper=wrapped)
        self.worker.wait_for_output("connected to", 60)
        return self.worker


def _cpu(ht: Hightide) -> dict[str, float]:
    """CPU seconds used so far by the server, the worker's supervisor and its runners."""
    assert ht.server is not None and ht.worker is not None
    supervisor, runners = split_cpu_seconds(ht.worker.pid)
    return {"server": tree_cpu_seconds(ht.server.pid), "supervisor": supervisor, "runners": runners}


def _cpu_ms(before: dict[str, float], after: dict[str, float], per: int) -> dict[str, float]:
    used = {k: (after[k] - before[k]) * 1000 / per for k in before}
    return {k: round(v, 2) for k, v in {**used, "total": sum(used.values())}.items()}


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _db(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    return db


async def _unfinished(client: Any) -> bool:
    return bool([r async for r in client.runs.list(status=UNFINISHED, page_size=1, limit=1)])


# -- (d) fan-out ----------------------------------------------------------------------------------
def _fanout_phases(db: sqlite3.Connection, parent_id: str) -> dict[str, float]:
    """Where one parent's time went, from the database (server clock) and the replay's own clock."""
    parent = db.execute(
        "SELECT created_at, started_at, finished_at, output FROM runs WHERE id = ?", [parent_id]
    ).fetchone()
    # the parent's one journal entry: the batch (with its children) recorded
    recorded = db.execute("SELECT min(created_at) FROM run_journal WHERE run_id = ?", [parent_id]).fetchone()[0]
    kids = db.execute(
        "SELECT min(started_at) AS first_start, max(finished_at) AS last_finish FROM runs WHERE parent_run_id = ?",
        [parent_id],
    ).fetchone()
    replay = json.loads(parent["output"])["replay_started"]
    return {
        "queued_to_first_claim_ms": _ms(parent["started_at"] - parent["created_at"]),
        "claim_to_batch_recorded_ms": _ms(recorded - parent["started_at"]),
        "batch_recorded_to_first_child_start_ms": _ms(kids["first_start"] - recorded),
        "children_first_start_to_last_finish_ms": _ms(kids["last_finish"] - kids["first_start"]),
        "last_child_to_replay_start_ms": _ms(replay - kids["last_finish"]),
        "replay_to_finished_ms": _ms(parent["finished_at"] - replay),
    }


async def hightide_fanout(workdir: Path, children: int, repeats: int, setup: Setup) -> dict[str, Any]:
    from hightide import AsyncClient

    ht = DurableHightide(workdir, "fanout", setup)
    client = None
    try:
        ht.start_server()
        ht.start_worker()
        client = AsyncClient(api_url=ht.api_url, secret_key=ht.key)
        done: list[tuple[str, float]] = []
        cpu0: dict[str, float] = {}
        for i in range(repeats + 1):  # the first is a warm-up
            if i == 1:
                cpu0 = _cpu(ht)
            t0 = time.time()
            handle = await client.trigger("fanout-parent", {"children": children})
            run = await client.runs.poll(handle.id, interval=0.01, timeout=60)
            seen = time.time() - t0
            ok = run.is_success and run.output["outputs"] == list(range(children))
            if not ok:
                raise RuntimeError(f"fan-out parent {run.id} ended {run.status}: {run.error or run.output}")
            server = run.finished_at.timestamp() - run.created_at.timestamp()  # type: ignore[union-attr]
            log(f"hightide fanout {'warm-up' if i == 0 else i}: {server:.3f}s server, {seen:.3f}s client")
            if i:
                done.append((run.id, seen))
        cpu = _cpu_ms(cpu0, _cpu(ht), repeats)
        db = _db(ht.db)
        server_s, phases = [], []
        for run_id, _ in done:
            row = db.execute("SELECT created_at, finished_at FROM runs WHERE id = ?", [run_id]).fetchone()
            server_s.append(row["finished_at"] - row["created_at"])
            phases.append(_fanout_phases(db, run_id))
        db.close()
        return {
            "children": children,
            "repeats": repeats,
            "wall_s": [round(s, 4) for s in server_s],
            "median_s": round(statistics.median(server_s), 4),
            "client_wall_s": [round(s, 4) for _, s in done],
            "client_median_s": round(statistics.median(s for _, s in done), 4),
            "client_poll_interval_s": 0.01,
            "cpu_ms_per_fanout": cpu,  # the client's polling (every 10 ms) included in the server's
            "phases_median_ms": {k: round(statistics.median(p[k] for p in phases), 1) for k in phases[0]},
            "phases": phases,
        }
    finally:
        if client is not None:
            await client.aclose()
        ht.close()


# -- (e) sleepers ---------------------------------------------------------------------------------
def _sleeper_phases(db: sqlite3.Connection, first_created: float) -> dict[str, Any]:
    """Where the sleepers' time went (server clock): when each recorded its wait, when its timer was
    due and fired, when its replay started (the task's clock) and finished. A sleeper has one journal
    entry (its wait) and one waitpoint (its timer)."""
    rows = db.execute(
        "SELECT r.created_at, r.started_at, r.finished_at, r.output, j.created_at AS recorded,"
        " w.resume_at, w.completed_at FROM runs r JOIN run_journal j ON j.run_id = r.id"
        " JOIN waitpoints w ON w.owner_run_id = r.id WHERE r.task_id = 'sleeper' AND r.created_at >= ?",
        [first_created],
    ).fetchall()

    def last(key: str) -> float:
        return _ms(max(r[key] for r in rows) - first_created)

    return {
        "n": len(rows),
        "last_created_ms": last("created_at"),
        "last_first_claim_ms": last("started_at"),
        "last_wait_recorded_ms": last("recorded"),
        "last_timer_due_ms": last("resume_at"),
        "last_timer_fired_ms": last("completed_at"),
        "last_finished_ms": last("finished_at"),
        "timer_late": latency_summary([r["completed_at"] - r["resume_at"] for r in rows]),
        "fired_to_replay_start": latency_summary([float(r["output"]) - r["completed_at"] for r in rows]),
        "replay_start_to_finished": latency_summary([r["finished_at"] - float(r["output"]) for r in rows]),
    }


async def hightide_sleepers(workdir: Path, runs: int, seconds: float, setup: Setup) -> dict[str, Any]:
    from hightide import AsyncClient

    ht = DurableHightide(workdir, "sleepers", setup)
    client = None
    try:
        ht.start_server()
        worker = ht.start_worker()
        assert ht.server is not None
        client = AsyncClient(api_url=ht.api_url, secret_key=ht.key)
        # Warm-up: a few runs through suspension and replay (the runners import the SDK's HTTP client
        # at their first durable call), not measured; as dbos_side.py does.
        warm = [{"task": "sleeper", "payload": {"seconds": setup.threshold + 0.5}} for _ in range(WARMUP_SLEEPERS)]
        await client.batch_trigger(warm)
        while await _unfinished(client):
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        roots = {"server": ht.server.pid, "worker": worker.pid}
        before = {name: Usage.of(tree(pid)) for name, pid in roots.items()}
        sampler = Sampler(roots)
        sampler.start()
        cpu0 = _cpu(ht)
        t0 = time.time()
        ids: list[str] = []
        for start in range(0, runs, 500):
            items = [{"task": "sleeper", "payload": {"seconds": seconds}} for _ in range(min(500, runs - start))]
            ids += (await client.batch_trigger(items)).ids
        trigger_s = time.time() - t0
        while await _unfinished(client):
            if time.time() - t0 > 120:
                raise TimeoutError("sleepers: not all finished after 120 s")
            await asyncio.sleep(0.1)
        client_s = time.time() - t0
        cpu = _cpu_ms(cpu0, _cpu(ht), runs)
        peaks = sampler.stop()
        db = _db(ht.db)
        span = db.execute(
            "SELECT min(created_at), max(finished_at), sum(status = 'COMPLETED'), count(*) FROM runs"
            " WHERE task_id = 'sleeper' AND created_at >= ?",
            [t0],
        ).fetchone()
        phases = _sleeper_phases(db, span[0])
        db.close()
        if span[2] != runs or span[3] != runs:
            raise RuntimeError(f"sleepers: {span[2]} of {span[3]} completed, expected {runs}")
        total = span[1] - span[0]
        rss_before = before["server"].rss_mb + before["worker"].rss_mb
        log(f"hightide sleepers: {runs} done {total:.3f}s after the first was created (client {client_s:.3f}s)")
        return {
            "runs": runs,
            "seconds": seconds,
            "warmup_runs": WARMUP_SLEEPERS,
            "total_s": round(total, 4),
            "client_total_s": round(client_s, 4),
            "trigger_s": round(trigger_s, 4),
            "rss_before_mb": round(rss_before, 1),
            "rss_peak_during_wait_mb": peaks["total"].rss_mb,
            "rss_growth_mb": round(peaks["total"].rss_mb - rss_before, 1),
            "rss_by_tree_mb": {n: {"before": before[n].rss_mb, "peak": peaks[n].rss_mb} for n in roots},
            "worker_processes_before": before["worker"].processes,
            "worker_processes_peak": peaks["worker"].processes,
            "runner_processes_peak": peaks["worker"].processes - 1,  # the supervisor is the tree's root
            "processes_peak": peaks["total"].processes,
            "threads_peak": {n: peaks[n].threads for n in roots},
            "samples": sampler.samples,
            "cpu_ms_per_run": cpu,  # both executions of each run; the benchmark's triggers and polling included
            "phases": phases,
        }
    finally:
        if client is not None:
            await client.aclose()
        ht.close()


# -- DBOS -----------------------------------------------------------------------------------------
def dbos(workdir: Path, command: list[str], wal: bool) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, str(BENCH_DIR / "dbos_side.py"), "--db-dir", str(workdir), *(["--wal"] if wal else [])]
    with open(workdir / "dbos.log", "ab") as err:
        done = subprocess.run([*args, *command], stdout=subprocess.PIPE, stderr=err, timeout=300, check=True)
    return dict(json.loads(done.stdout))


# -- the report -----------------------------------------------------------------------------------
def _median(rounds: list[dict[str, Any]], *path: str) -> float | None:
    values: list[float] = []
    for found in rounds:
        value: Any = found
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, int | float):
            values.append(float(value))
    return round(statistics.median(values), 4) if values else None


def summarise(results: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per measure: the median over rounds of each side's value, and the ratios to DBOS."""
    rows = []

    def row(label: str, bench: str, h_key: tuple[str, ...], d_key: tuple[str, ...] | None, target: str = "") -> None:
        h = _median(results.get(f"hightide_{bench}", []), *h_key)
        d = _median(results.get(f"dbos_{bench}", []), *d_key) if d_key else None
        w = _median(results.get(f"dbos_wal_{bench}", []), *d_key) if d_key else None
        ratio = round(h / w, 2) if h is not None and w else None
        ratio_shipped = round(h / d, 2) if h is not None and d else None
        rows.append(
            {"measure": label, "hightide": h, "dbos_wal": w, "dbos": d, "ratio_wal": ratio, "ratio": ratio_shipped}
            | {"target": target}
        )

    row("(d) fan-out 100, wall, server clock [s]", "fanout", ("median_s",), ("median_s",), f"< {TARGET_FANOUT_S} s")
    row("(d) fan-out 100, wall, client [s]", "fanout", ("client_median_s",), ("median_s",))
    row("(e) 1,000 x wait 2 s, total [s]", "sleepers", ("total_s",), ("total_s",), f"< {TARGET_SLEEPERS_S} s")
    row("(e) RSS before [MB]", "sleepers", ("rss_before_mb",), ("rss_before_mb",))
    row("(e) RSS peak during the wait [MB]", "sleepers", ("rss_peak_during_wait_mb",), ("rss_peak_during_wait_mb",))
    growth = f"< {TARGET_RSS_GROWTH_MB:g} MB"
    row("(e) RSS growth [MB]", "sleepers", ("rss_growth_mb",), ("rss_growth_mb",), growth)
    row("(e) runner processes, max", "sleepers", ("runner_processes_peak",), None, "none per waiting run")
    row("(e) processes, max (all of the system)", "sleepers", ("processes_peak",), ("processes_during_wait",))
    row("(d) CPU per fan-out [ms]", "fanout", ("cpu_ms_per_fanout", "total"), ("cpu_ms_per_fanout",))
    row("(e) CPU per run [ms]", "sleepers", ("cpu_ms_per_run", "total"), ("cpu_ms_per_run",))
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    def fmt(v: Any, suffix: str = "") -> str:
        return "-" if v is None else f"{v:g}{suffix}"

    header = ["measure", "Hightide", "DBOS WAL", "DBOS", "H/DBOS WAL", "H/DBOS", "target"]
    lines = [
        [
            r["measure"],
            fmt(r["hightide"]),
            fmt(r["dbos_wal"]),
            fmt(r["dbos"]),
            fmt(r["ratio_wal"], "x"),
            fmt(r["ratio"], "x"),
            r["target"],
        ]
        for r in rows
    ]
    widths = [max(len(x[i]) for x in [header, *lines]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in [header, *lines])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="run everything this many times; medians are reported")
    ap.add_argument("--only", choices=["hightide", "dbos"], help="one side only")
    ap.add_argument("--bench", choices=["fanout", "sleepers"], help="one benchmark only")
    ap.add_argument("--children", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--threshold", type=float, default=1.0, help="Hightide's checkpoint threshold, seconds")
    ap.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "durable.json")
    ap.add_argument("--wait-quiet", type=float, default=30.0, help="wait up to N s for an idle machine before each")
    ap.add_argument("--hightide-worker-args", default="", help='e.g. "--runs-per-process 100000" (experiments)')
    ap.add_argument("--profile", type=Path, help="py-spy the Hightide server and worker into this folder")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temporary folder (logs, databases)")
    args = ap.parse_args(argv)
    from run import machine, wait_quiet

    atexit.register(Proc.stop_all)
    tmp = Path(tempfile.mkdtemp(prefix="hightide-durable-"))
    fanout = ["fanout", "--children", str(args.children), "--repeats", str(args.repeats)]
    sleepers = ["sleepers", "--runs", str(args.runs), "--seconds", str(args.seconds)]
    results: dict[str, list[dict[str, Any]]] = {}
    started = time.monotonic()
    try:
        for n in range(args.rounds):
            for bench in ("fanout", "sleepers"):
                if args.bench not in (None, bench):
                    continue
                for side in ("hightide", "dbos", "dbos_wal"):
                    if args.only not in (None, side.split("_")[0]):
                        continue
                    wait_quiet(args.wait_quiet)
                    log(f"== round {n + 1}: {side} {bench} ==")
                    watch = CpuWatch(None)
                    watch.start()
                    where = tmp / f"{n}-{side}-{bench}"
                    prof = args.profile / f"round-{n + 1}" if args.profile else None
                    if prof:
                        prof.mkdir(parents=True, exist_ok=True)
                    setup = Setup(args.threshold, tuple(args.hightide_worker_args.split()), prof)
                    if side == "hightide" and bench == "fanout":
                        res = asyncio.run(hightide_fanout(where, args.children, args.repeats, setup))
                    elif side == "hightide":
                        res = asyncio.run(hightide_sleepers(where, args.runs, args.seconds, setup))
                    else:
                        res = dbos(where, fanout if bench == "fanout" else sleepers, wal=side == "dbos_wal")
                    res["other_work_share_of_machine"] = watch.stop()["other_work_share_of_machine"]
                    results.setdefault(f"{side}_{bench}", []).append(res)
    finally:
        clean_up(tmp, args.keep_tmp)
    rows = summarise(results)
    report = {
        "machine": machine(),
        "command": " ".join(["python", "bench/durable.py", *(argv if argv is not None else sys.argv[1:])]),
        "elapsed_seconds": round(time.monotonic() - started, 1),
        "summary": rows,
        **results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print()
    print(f"Durable execution, Hightide vs DBOS on SQLite, median of {args.rounds} round(s); ratios are Hightide/DBOS")
    print(table(rows))
    for key, runs in results.items():
        others = [r["other_work_share_of_machine"] for r in runs]
        print(f"{key}: other work's share of the machine per round: {others}")
    for r in results.get("hightide_fanout", []):
        print(f"hightide fan-out phases (median ms): {r['phases_median_ms']}")
    for r in results.get("hightide_sleepers", []):
        ph = r["phases"]
        print(
            f"hightide sleepers (ms after the first was created): last wait recorded {ph['last_wait_recorded_ms']},"
            f" last timer due {ph['last_timer_due_ms']}, fired {ph['last_timer_fired_ms']},"
            f" last finished {ph['last_finished_ms']}; timer fired to replay start p50"
            f" {ph['fired_to_replay_start']['p50_ms']} max {ph['fired_to_replay_start']['max_ms']};"
            f" CPU ms/run {r['cpu_ms_per_run']}"
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
