"""Shared helpers: benchmark sizes, child processes that are always cleaned up, statistics."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Sizes:
    """How much each benchmark does. ``full`` is the default; ``quick`` is for a smoke run."""

    name: str
    single: int  # (a) sequential single triggers (the first `warmup` of them are not timed)
    warmup: int
    batched: int  # (a) runs triggered in batches; (b) drains single + batched runs
    batch_size: int
    latency_rate: float  # (c) runs per second
    latency_seconds: float  # (c) for this long
    drain_timeout: float  # (b) give up (and report a partial rate) after this long
    settle_timeout: float  # (c) wait this long at most for the last runs to finish

    @property
    def drain(self) -> int:
        return self.single + self.batched

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drain": self.drain}


FULL = Sizes("full", 1000, 20, 9000, 500, 50.0, 10.0, 150.0, 30.0)
QUICK = Sizes("quick", 200, 20, 1000, 500, 50.0, 3.0, 20.0, 10.0)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- processes ------------------------------------------------------------------------------------
def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of ``pid`` from /proc, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[19])


def descendants(pid: int) -> dict[int, int]:
    """Every live descendant of ``pid`` as {pid: start time}, found through /proc parent links."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _stat(int(entry))
            if info is not None:
                children.setdefault(info[0], []).append(int(entry))
                starts[int(entry)] = info[1]
    found: dict[int, int] = {}
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found[child] = starts[child]
                todo.append(child)
    return found


class Proc:
    """A child process in its own process group, logging to a file. ``stop`` ends it and everything
    it started, even grandchildren that moved to their own session (Hightide's runner processes)."""

    live: list[Proc] = []

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        *,
        cwd: Path,
        env: dict[str, str],
        log_dir: Path,
        wrapper: bool = False,
    ) -> None:
        """``wrapper``: the command is a wrapper such as ``py-spy record -- CMD``; ``stop`` then
        signals the wrapped command only, so that the wrapper can write its output and exit."""
        self.name = name
        self.wrapper = wrapper
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115  (closed in stop)
        self.popen = subprocess.Popen(
            list(args),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started = time.time()
        Proc.live.append(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_for_output(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: no {text!r} after {timeout}s:\n{self.output()[-3000:]}")
            time.sleep(0.05)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the group, wait up to ``grace`` seconds, then SIGKILL the group and every
        descendant seen (by pid, checking its start time so that a reused pid is left alone)."""
        if self in Proc.live:
            Proc.live.remove(self)
        family = descendants(self.pid)
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                if self.wrapper:
                    for pid, start in descendants(self.pid).items():
                        if (_stat(pid) or (0, 0))[0] == self.pid and (_stat(pid) or (0, -1))[1] == start:
                            os.kill(pid, signal.SIGTERM)
                else:
                    os.killpg(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                family.update(descendants(self.pid))
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)
        # Descendants in other sessions (Hightide's runners) exit when their pipes close; give them
        # a moment, then kill whatever is left of the ones this process started.
        deadline = time.monotonic() + 3
        left = dict(family)
        while left and time.monotonic() < deadline:
            left = {pid: start for pid, start in left.items() if (_stat(pid) or (0, -1))[1] == start}
            if left:
                time.sleep(0.05)
        for pid, start in left.items():
            if (_stat(pid) or (0, -1))[1] == start:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._log.close()

    @classmethod
    def stop_all(cls) -> None:
        for proc in list(reversed(cls.live)):
            with contextlib.suppress(Exception):
                proc.stop(grace=3)


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIGHTIDE_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


# -- memory and processes -------------------------------------------------------------------------
def proc_status(pid: int) -> dict[str, int] | None:
    """``VmRSS`` (kB) and ``Threads`` from /proc/PID/status; None if the process is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    found = {"VmRSS": 0, "Threads": 0}  # a zombie has no VmRSS
    for line in lines:
        key, _, value = line.partition(":")
        if key in found:
            found[key] = int(value.split()[0])
    return found


@dataclass
class Usage:
    """What a set of processes holds: resident memory (MB), processes and threads."""

    rss_mb: float = 0.0
    processes: int = 0
    threads: int = 0

    @classmethod
    def of(cls, pids: Sequence[int]) -> Usage:
        live = [st for st in map(proc_status, pids) if st is not None]
        rss = sum(st["VmRSS"] for st in live) / 1024
        return cls(round(rss, 1), len(live), sum(st["Threads"] for st in live))

    def peak(self, other: Usage) -> Usage:
        return Usage(
            max(self.rss_mb, other.rss_mb), max(self.processes, other.processes), max(self.threads, other.threads)
        )


def tree(pid: int) -> list[int]:
    """``pid`` and its live descendants."""
    return [pid, *descendants(pid)]


class Sampler(threading.Thread):
    """Every ``interval`` seconds until ``stop``, the usage of each named process tree (by its root's
    pid); keeps each tree's peak in ``peaks`` and the peak of their sum in ``peaks["total"]``."""

    def __init__(self, roots: dict[str, int], interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.roots, self.interval = roots, interval
        self.peaks: dict[str, Usage] = {name: Usage() for name in [*roots, "total"]}
        self.samples = 0
        self._stopped = threading.Event()

    def sample(self) -> dict[str, Usage]:
        found = {name: Usage.of(tree(pid)) for name, pid in self.roots.items()}
        found["total"] = Usage(
            round(sum(u.rss_mb for u in found.values()), 1),
            sum(u.processes for u in found.values()),
            sum(u.threads for u in found.values()),
        )
        return found

    def run(self) -> None:
        while True:
            for name, usage in self.sample().items():
                self.peaks[name] = self.peaks[name].peak(usage)
            self.samples += 1
            if self._stopped.wait(self.interval):
                return

    def stop(self) -> dict[str, Usage]:
        self._stopped.set()
        self.join()
        return self.peaks


# -- other work on the machine --------------------------------------------------------------------
def _proc_cpu_seconds(pid: int) -> float:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used by ``pid``, its reaped children and its live descendants."""
    own, children = split_cpu_seconds(pid)
    return own + children


def split_cpu_seconds(pid: int) -> tuple[float, float]:
    """(CPU seconds of ``pid`` itself, of its descendants: reaped ones and live ones)."""
    own = children = 0.0
    for p in [pid, *descendants(pid)]:
        try:
            raw = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        f = [int(x) for x in raw[raw.rindex(")") + 2 :].split()[11:15]]  # utime stime cutime cstime
        tick = os.sysconf("SC_CLK_TCK")
        if p == pid:
            own += (f[0] + f[1]) / tick
            children += (f[2] + f[3]) / tick
        else:
            children += sum(f) / tick
    return own, children


def _system_busy_seconds() -> float:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait (guest is inside user)
    return busy / os.sysconf("SC_CLK_TCK")


class CpuWatch:
    """How much CPU went to other work while a side ran: all CPU time used on the machine, minus
    this process and its (reaped) children, minus the Redis server (part of the Celery side).
    Children still running at ``stop`` are counted through /proc."""

    def __init__(self, redis_pid: int | None) -> None:
        self.redis_pid = redis_pid

    def _ours(self) -> float:
        t = os.times()
        live = sum(_proc_cpu_seconds(pid) for p in Proc.live for pid in [p.pid, *descendants(p.pid)])
        redis = _proc_cpu_seconds(self.redis_pid) if self.redis_pid else 0.0
        return t.user + t.system + t.children_user + t.children_system + live + redis

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.sys0 = _system_busy_seconds()
        self.ours0 = self._ours()

    def stop(self) -> dict[str, float]:
        elapsed = time.monotonic() - self.t0
        total = _system_busy_seconds() - self.sys0
        ours = self._ours() - self.ours0
        cpus = os.cpu_count() or 1
        return {
            "elapsed_s": round(elapsed, 1),
            "cpu_used_by_benchmark_s": round(ours, 1),
            "cpu_used_by_other_work_s": round(max(total - ours, 0.0), 1),
            "other_work_share_of_machine": round(max(total - ours, 0.0) / (elapsed * cpus), 3),
        }


# -- statistics -----------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100), as numpy's default."""
    data = sorted(values)
    if not data:
        return float("nan")
    pos = (len(data) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def latency_summary(seconds: Sequence[float]) -> dict[str, Any]:
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p90_ms": round(percentile(ms, 90), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2) if ms else None,
        "min_ms": round(min(ms), 2) if ms else None,
    }


def latency_ms(ms: Sequence[float]) -> dict[str, Any]:
    """Latencies already in milliseconds: ``p50``, ``p90``, ``p99``, ``max`` (rounded) and ``n``."""
    return {
        "p50": round(percentile(ms, 50), 1),
        "p90": round(percentile(ms, 90), 1),
        "p99": round(percentile(ms, 99), 1),
        "max": round(max(ms), 1),
        "n": len(ms),
    }


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def batch_sizes(total: int, size: int) -> list[int]:
    """``total`` split into batches of at most ``size``."""
    return [min(size, total - start) for start in range(0, total, size)]


def rate_entry(n: int, seconds: float, **extra: Any) -> dict[str, Any]:
    """How a timed trigger phase is recorded in the results."""
    return {"n": n, **extra, "seconds": round(seconds, 4), "rate": round(n / seconds, 1)}


def clean_up(tmp: Path, keep: bool) -> None:
    """After a benchmark: stop every process it started, then remove its folder (unless ``keep``)."""
    Proc.stop_all()
    if keep:
        log(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
