"""How much memory runners use: each runner with every process it started (a task that runs ffmpeg
is charged for ffmpeg), read from the OS with psutil. The supervisor compares it with each run's
machine preset and kills a runner over its limit (``Supervisor._watch_memory``)."""

from __future__ import annotations

import time
from collections.abc import Iterable

import psutil

WATCH_INTERVAL = 0.2  # seconds between two readings: how far past its limit a runner may get
CHILDREN_EVERY = 1.0  # seconds between two looks for a runner's child processes (a look costs ~1 ms)


class MemoryReader:
    """Reads the resident memory of runners with their descendants. Looking for descendants scans
    the process table, so it is done at most every ``CHILDREN_EVERY`` per runner; the memory of the
    processes found is read at every call."""

    def __init__(self) -> None:
        self._children: dict[int, tuple[float, list[psutil.Process]]] = {}

    def read(self, pids: Iterable[int], now: float | None = None) -> dict[int, int]:
        """Bytes per pid in ``pids`` (0 for a process gone meanwhile); forgets runners not asked for."""
        now = time.monotonic() if now is None else now
        usage: dict[int, int] = {}
        seen: dict[int, tuple[float, list[psutil.Process]]] = {}
        for pid in pids:
            looked, children = self._children.get(pid, (float("-inf"), []))
            if now - looked >= CHILDREN_EVERY:
                looked, children = now, _descendants(pid)
            seen[pid] = (looked, children)
            usage[pid] = process_memory(pid) + sum(_memory(child) for child in children)
        self._children = seen
        return usage


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return []


def _memory(process: psutil.Process) -> int:
    try:
        return int(process.memory_info().rss)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return 0


def process_memory(pid: int) -> int:
    """Resident memory in bytes of process ``pid`` alone (0 if it is gone)."""
    try:
        return _memory(psutil.Process(pid))
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return 0


def megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:,.0f} MB"
