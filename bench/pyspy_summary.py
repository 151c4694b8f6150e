"""Summarise py-spy collapsed stacks (``py-spy record --format raw``, as ``run.py --profile`` writes).

    python bench/pyspy_summary.py PROFILE.txt [--top 25] [--match hightide/] [--process runner]

Prints, per process, the samples, then the functions with the most inclusive and self samples
(inclusive counts a function once per stack). ``--match`` keeps only frames whose text contains it
in the inclusive list (e.g. ``hightide/`` for the project's own code).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from pathlib import Path

_PROCESS = re.compile(r'^process (\d+):"(.*)"$')
_PROCESS_PREFIX = re.compile(r'process (\d+):"[^"]*"')


def _process_label(frame: str) -> str:
    m = _PROCESS.match(frame)
    if not m:
        return frame
    cmd = m.group(2)
    if "hightide.worker.runner" in cmd:
        kind = "runner"
    elif " worker" in cmd:
        kind = "worker supervisor"
    elif " server" in cmd:
        kind = "server"
    else:
        kind = cmd[:60]
    return kind


# Server samples by what they serve: the first rule whose text is in the stack wins.
ENDPOINT_RULES = [
    ("claim (worker/claim)", ("claim (hightide/server/routes_worker.py", "Execution.claim ", "Execution.claim_wait")),
    ("complete (worker/complete)", ("complete.<locals>.apply", "complete (hightide/server/routes_worker.py")),
    (
        "heartbeat (worker/heartbeat)",
        (
            "heartbeat (hightide/server/routes_worker.py",
            "Execution.heartbeat",
            "ClaimOps.runs_not_held",
            "ClaimOps.extend_leases",
        ),
    ),
    (
        "trigger (tasks/{id}/trigger, tasks/batch)",
        ("trigger (hightide/server/routes_runs.py", "_batch (hightide/server", "Triggering.trigger"),
    ),
    (
        "runs list / retrieve (the benchmark's polling)",
        ("list_runs (hightide", "retrieve (hightide/server", "RunOps.list_runs"),
    ),
    ("logs", ("logs (hightide/server",)),
    ("scheduler", ("Scheduler.run", "Control.process_due", "ClaimOps.announce_ready", "Control.next_due_in")),
    ("auth (every request)", ("current_environment (hightide",)),
    ("HTTP framework, not attributed (uvicorn/FastAPI/pydantic)", ("RequestResponseCycle.run_asgi", "httptools_impl")),
    ("threadpool machinery", ("WorkerThread.run",)),
    ("imports / start-up", ("_find_and_load",)),
]


def by_endpoint(path: Path) -> str:
    counts: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or "hightide.worker.runner" in stack or " worker --" in stack[:300]:
            continue
        n = int(count)
        total += n
        for label, needles in ENDPOINT_RULES:
            if any(x in stack for x in needles):
                counts[label] += n
                break
        else:
            counts["other (event loop, idle)"] += n
    out = [f"{path.name}: server samples by endpoint ({total} samples)"]
    out += [f"{n / max(total, 1):6.1%}  {label}" for label, n in counts.most_common()]
    return "\n".join(out)


def summarise(path: Path, top: int, match: str | None, only: str | None) -> str:
    per_process: dict[str, Counter[str]] = defaultdict(Counter)
    self_time: dict[str, Counter[str]] = defaultdict(Counter)
    totals: Counter[str] = Counter()
    pids: dict[str, set[str]] = defaultdict(set)
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        label = "process"
        while True:  # --subprocesses nests child processes; their command lines may hold ';'
            m = _PROCESS_PREFIX.match(stack)
            if not m:
                break
            label = _process_label(m.group(0))
            pids[label].add(m.group(1))
            stack = stack[m.end() :].lstrip(";")
        frames = stack.split(";") if stack else []
        if only and only not in label:
            continue
        totals[label] += n
        for frame in set(frames):
            if match is None or match in frame:
                per_process[label][frame] += n
        if frames:
            self_time[label][frames[-1]] += n
    out = [f"{path.name}: {sum(totals.values())} samples"]
    for label, total in totals.most_common():
        out.append(f"\n== {label} ({len(pids[label]) or 1} process(es)): {total} samples ==")
        out.append(f"-- inclusive{f' (frames matching {match!r})' if match else ''} --")
        for frame, n in per_process[label].most_common(top):
            out.append(f"{n / total:6.1%}  {frame}")
        out.append("-- self --")
        for frame, n in self_time[label].most_common(top):
            out.append(f"{n / total:6.1%}  {frame}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", help="inclusive list: only frames containing this text")
    parser.add_argument("--process", help="only processes whose label contains this (server, supervisor, runner)")
    parser.add_argument("--by-endpoint", action="store_true", help="server profiles: samples per endpoint")
    args = parser.parse_args()
    for path in args.profiles:
        if args.by_endpoint:
            print(by_endpoint(path))
            print()
            continue
        print(summarise(path, args.top, args.match, args.process))
        print()


if __name__ == "__main__":
    main()
