"""How much memory runners use: each runner with every process it started (a task that runs ffmpeg
is charged for ffmpeg), read from the OS with psutil. The supervisor compares it with each run's
machine preset and kills a runner over its limit (``Supervisor._watch_memory``)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable

import psutil

WATCH_INTERVAL = 0.2  # seconds between two readings: how far past its limit a runner may get
CHILDREN_EVERY = 1.0  # seconds between two looks for runners' child processes (a scan of the process table)

_GONE = (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess)


class MemoryReader:
    """Reads the resident memory of runners with their descendants. Finding descendants scans the
    whole process table (about 10 ms with a few hundred processes), so one scan serves every runner
    and is done at most every ``CHILDREN_EVERY``; the memory of each process found is read at every
    call (tens of microseconds each)."""

    def __init__(self) -> None:
        self._looked = float("-inf")
        self._processes: dict[int, psutil.Process] = {}  # runners we were asked about, kept between calls
        self._children: dict[int, list[psutil.Process]] = {}
        self._last: dict[int, int] = {}  # the latest reading of each runner, kept until it is gone

    def read(self, pids: Iterable[int], now: float | None = None) -> dict[int, int]:
        """Bytes per pid in ``pids`` (0 for a process gone meanwhile); forgets runners not asked for."""
        now = time.monotonic() if now is None else now
        wanted = list(pids)
        self._processes = {pid: self._processes.get(pid) or _process(pid) for pid in wanted}
        if wanted and now - self._looked >= CHILDREN_EVERY:
            self._looked, self._children = now, _descendants(wanted)
        usage = {
            pid: _memory(self._processes[pid]) + sum(_memory(child) for child in self._children.get(pid, ()))
            for pid in wanted
        }
        self._last.update(usage)
        return usage

    def last(self, pid: int) -> int:
        """The latest reading of runner ``pid`` (0: never read, e.g. it only ran runs shorter than a
        reading's interval). Reading costs tens of microseconds a process, too much for every run."""
        return self._last.get(pid, 0)

    def forget(self, pid: int) -> None:
        self._last.pop(pid, None)


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except _GONE:
        return None


def _descendants(pids: list[int]) -> dict[int, list[psutil.Process]]:
    """The descendants of each of ``pids``, from one scan of the process table."""
    children: dict[int, list[psutil.Process]] = defaultdict(list)
    for process in psutil.process_iter(["ppid"]):
        children[process.info["ppid"]].append(process)
    found: dict[int, list[psutil.Process]] = {}
    for root in pids:
        seen, stack, mine = {root}, [root], []
        while stack:
            for child in children.get(stack.pop(), ()):
                if child.pid not in seen:  # a pid reused while the table was read can make a cycle
                    seen.add(child.pid)
                    mine.append(child)
                    stack.append(child.pid)
        found[root] = mine
    return found


def _memory(process: psutil.Process | None) -> int:
    if process is None:
        return 0
    try:
        return int(process.memory_info().rss)
    except _GONE:
        return 0


def megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:,.0f} MB"
