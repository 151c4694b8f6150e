"""Hightide vs Celery 5 (Redis), no-op tasks, 2 worker processes each.

    python bench/run.py            # everything, ~4-5 minutes
    python bench/run.py --quick    # smaller sizes, ~1 minute
    python bench/run.py --only hightide --profile /tmp/prof   # py-spy the Hightide processes
    python bench/run.py --only durable   # (d) fan-out and (e) 1,000 waits vs DBOS: bench/durable.py

Prints a table and writes bench/results/latest.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH_DIR, FULL, QUICK, CpuWatch, Proc, Sizes, clean_up, log

TARGET_DRAIN_RATIO = 0.7
TARGET_P50_MS = 15.0


# -- the machine ----------------------------------------------------------------------------------
def _cpu_times() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def cpu_busy(seconds: float = 1.0) -> float:
    """Share of all CPUs busy over ``seconds`` (0..1): other work on the machine skews results."""
    b0, t0 = _cpu_times()
    time.sleep(seconds)
    b1, t1 = _cpu_times()
    return (b1 - b0) / max(t1 - t0, 1)


def wait_quiet(max_wait: float, threshold: float = 0.15) -> float:
    deadline = time.monotonic() + max_wait
    busy = cpu_busy()
    while busy > threshold and time.monotonic() < deadline:
        log(f"machine is {busy:.0%} busy with other work; waiting for it to calm down")
        busy = cpu_busy(2.0)
    if busy > threshold:
        log(f"WARNING: machine {busy:.0%} busy before starting: results will be skewed")
    return busy


def redis_pid() -> int | None:
    with contextlib.suppress(Exception):
        import redis

        return int(redis.Redis(host="127.0.0.1", port=6379).info("server")["process_id"])
    return None


def machine() -> dict[str, Any]:
    def first(path: str, key: str) -> str:
        with contextlib.suppress(OSError):
            for line in Path(path).read_text().splitlines():
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
        return ""

    def version(module: str) -> str:
        with contextlib.suppress(Exception):
            from importlib.metadata import version as v

            return v(module)
        return ""

    def git_head() -> str:
        with contextlib.suppress(Exception):
            return subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=BENCH_DIR, capture_output=True, text=True, timeout=5
            ).stdout.strip()
        return ""

    def redis_version() -> str:
        with contextlib.suppress(Exception):
            import redis

            return str(redis.Redis(host="127.0.0.1", port=6379).info("server")["redis_version"])
        return ""

    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "host": platform.node(),
        "cpu": first("/proc/cpuinfo", "model name"),
        "cpus": os.cpu_count(),
        "memory": first("/proc/meminfo", "MemTotal"),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "hightide": version("hightide"),
        "celery": version("celery"),
        "kombu": version("kombu"),
        "redis_server": redis_version(),
        "sqlite": __import__("sqlite3").sqlite_version,
        "git_head": git_head(),
    }


# -- the report -----------------------------------------------------------------------------------
def _get(d: dict[str, Any] | None, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _ratio(a: Any, b: Any) -> float | None:
    if not isinstance(a, int | float) or not isinstance(b, int | float) or b == 0 or math.isnan(a) or math.isnan(b):
        return None
    return round(a / b, 3)


def summarise(ht: dict[str, Any] | None, ce: dict[str, Any] | None) -> list[dict[str, Any]]:
    rows = []

    def rate(label: str, *path: str, target: float | None = None) -> None:
        h, c = _get(ht, *path), _get(ce, *path)
        r = _ratio(h, c)
        rows.append(
            {
                "metric": label,
                "unit": "runs/s",
                "hightide": h,
                "celery": c,
                "ratio": r,
                "ratio_is": "Hightide/Celery (higher is better for Hightide)",
                "target": f">= {target}x" if target else None,
                "met": (r >= target) if (target and r is not None) else None,
            }
        )

    def latency(label: str, key: str, target_ms: float | None = None) -> None:
        h, c = _get(ht, "latency", "start", key), _get(ce, "latency", "start", key)
        rows.append(
            {
                "metric": label,
                "unit": "ms",
                "hightide": h,
                "celery": c,
                "ratio": _ratio(h, c),
                "ratio_is": "Hightide/Celery latency (lower is better for Hightide; <1 = Hightide faster)",
                "target": f"Hightide < {target_ms:g} ms" if target_ms else None,
                "met": (h < target_ms) if (target_ms and isinstance(h, int | float)) else None,
            }
        )

    rate("(a) trigger, single (sequential awaits)", "trigger_single", "rate")
    rate("(a) trigger, batched (500/batch)", "trigger_batch", "rate")
    rate("(b) drain of queued runs", "drain", "rate", target=TARGET_DRAIN_RATIO)
    rate("(b) drain incl. worker start-up", "drain", "rate_incl_worker_start")
    latency("(c) trigger->start p50 @50/s", "p50_ms", TARGET_P50_MS)
    latency("(c) trigger->start p99 @50/s", "p99_ms")
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:,.2f}"
    return str(value)


def table(rows: list[dict[str, Any]]) -> str:
    header = ["metric", "Hightide", "Celery", "ratio H/C", "target", "met"]
    lines = [
        [
            f"{r['metric']} [{r['unit']}]",
            _fmt(r["hightide"]),
            _fmt(r["celery"]),
            "-" if r["ratio"] is None else f"{r['ratio']:.2f}x",
            r["target"] or "",
            {True: "yes", False: "NO", None: ""}[r["met"]],
        ]
        for r in rows
    ]
    widths = [max(len(x[i]) for x in [header, *lines]) for i in range(len(header))]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    return "\n".join(out)


# -- main -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (~1 minute)")
    parser.add_argument(
        "--only", choices=["hightide", "celery", "durable"], help="one side only; durable: bench/durable.py instead"
    )
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "latest.json")
    parser.add_argument("--profile", type=Path, help="py-spy the Hightide server and worker into this folder")
    parser.add_argument(
        "--wait-quiet", type=float, help="wait up to N s for an idle machine before each side (default 30; quick 10)"
    )
    parser.add_argument(
        "--hightide-worker-args",
        default="",
        help='extra `hightide worker` options for experiments, e.g. "--runs-per-process 100000"',
    )
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temporary folder (logs, databases)")
    args = parser.parse_args(argv)
    if args.only == "durable":  # its own benchmarks and report (see durable.py --help for its options)
        import durable

        passed = ["--rounds", "1"] if args.quick else []
        passed += ["--keep-tmp"] if args.keep_tmp else []
        passed += ["--wait-quiet", str(args.wait_quiet)] if args.wait_quiet is not None else []
        passed += ["--profile", str(args.profile)] if args.profile else []
        return durable.main([*passed, "--hightide-worker-args", args.hightide_worker_args])
    sizes: Sizes = QUICK if args.quick else FULL
    if args.wait_quiet is None:
        args.wait_quiet = 10.0 if args.quick else 30.0

    def on_signal(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    atexit.register(Proc.stop_all)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="hightide-bench-"))
    report: dict[str, Any] = {
        "machine": machine(),
        "sizes": sizes.as_dict(),
        "command": " ".join(["python", "bench/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "busy_before": {},
        "cpu": {},
        "errors": {},
    }
    results: dict[str, dict[str, Any]] = {}
    sides = [s for s in ("celery", "hightide") if args.only in (None, s)]
    try:
        for side in sides:
            report["busy_before"][side] = round(wait_quiet(args.wait_quiet), 3)
            log(f"== {side} ({sizes.name}) ==")
            watch = CpuWatch(redis_pid())
            watch.start()
            try:
                if side == "celery":
                    import celery_side

                    results[side] = celery_side.run(sizes, tmp / side)
                else:
                    import hightide_side

                    extra = args.hightide_worker_args.split()
                    results[side] = hightide_side.run(sizes, tmp / side, args.profile, extra)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # one side failing still reports the other
                log(f"{side} failed: {type(exc).__name__}: {exc}")
                report["errors"][side] = f"{type(exc).__name__}: {exc}"
            finally:
                Proc.stop_all()
                report["cpu"][side] = watch.stop()
                if report["cpu"][side]["other_work_share_of_machine"] > 0.1:
                    log(
                        f"WARNING: other work used {report['cpu'][side]['other_work_share_of_machine']:.0%} of the machine"
                    )
    finally:
        clean_up(tmp, args.keep_tmp)

    rows = summarise(results.get("hightide"), results.get("celery"))
    report.update(results)
    report["summary"] = rows
    report["elapsed_seconds"] = round(time.monotonic() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")

    print()
    print(f"Hightide vs Celery, no-op tasks, 2 worker processes each ({sizes.name}: drain of {sizes.drain:,} runs)")
    print(table(rows))
    for side, res in results.items():
        lat = res.get("latency", {})
        extra = ""
        if side == "hightide":
            extra = (
                f"; server-recorded claim p50 {_get(lat, 'claimed_server_started_at', 'p50_ms')} ms"
                f"; trigger call p50 {_get(lat, 'trigger_call', 'p50_ms')} ms"
            )
        print(
            f"{side}: drain {_get(res, 'drain', 'done')}/{_get(res, 'drain', 'n')} done"
            f" in {_get(res, 'drain', 'window_seconds')} s; latency n={_get(lat, 'start', 'n')}"
            f" at {_get(lat, 'rate_actual')}/s, p90 {_get(lat, 'start', 'p90_ms')} ms{extra}"
        )
        print(f"{side}: drain CPU per run (ms): {_get(res, 'drain', 'cpu_ms_per_run')}")
    for side, err in report["errors"].items():
        print(f"{side}: FAILED: {err}")
    others = {side: c["other_work_share_of_machine"] for side, c in report["cpu"].items()}
    print(
        f"machine busy before start: {report['busy_before']}; other work's share of the machine during each"
        f" side: {others}; elapsed {report['elapsed_seconds']} s"
    )
    print(f"wrote {args.out}")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
