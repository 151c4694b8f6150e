"""How much memory runners use: each runner with every process it started (a task that runs ffmpeg
is charged for ffmpeg), read from the OS with psutil (``MemoryReader``), against the limit of each
run's machine preset (``MemoryWatch``). The supervisor kills a runner over its limit."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable

import psutil

from hightide.core.machines import preset
from hightide.core.protocol import Execution

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


class MemoryWatch:
    """Runners' memory against their machines' presets, scaled by ``--machine-memory-scale``."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self.reader = MemoryReader()

    def limit(self, machine: str | None) -> int:
        return preset(machine).memory_limit(self.scale)

    def over(self, runners: Iterable[tuple[int, str | None]]) -> dict[int, int]:
        """Read the runners (pid, machine) executing runs now: those over their limit, with their use."""
        wanted = dict(runners)
        usage = self.reader.read(wanted)
        return {pid: used for pid, used in usage.items() if used > self.limit(wanted[pid])}

    def was_over(self, pid: int, machine: str | None) -> bool:
        """Whether a runner held more than its preset allows at its latest reading (at most
        ``WATCH_INTERVAL`` old), to retire it after its run: reading it again for every run would
        cost the supervisor a tenth of a millisecond per run."""
        over = self.reader.last(pid) > self.limit(machine)
        if over:
            self.reader.forget(pid)
        return over

    def message(self, execution: Execution, used: int) -> str:
        """The ``OutOfMemoryError`` of an attempt whose runner was killed at ``used`` bytes."""
        machine = preset(execution.machine)
        limit = megabytes(self.limit(machine.name))
        scaled = "" if self.scale == 1 else f", scaled by --machine-memory-scale {self.scale:g}"
        retry = (
            f"; the task's retry moves it to {execution.retry_machine}"
            if execution.retry_machine and execution.attempt < execution.max_attempts
            else '; choose a bigger machine (machine="large-1x"), or retry on one with '
            'retry={"out_of_memory": {"machine": "large-1x"}}'
        )
        return (
            f"the run used {megabytes(used)}, over the {limit} of machine {machine.name} "
            f"({machine.describe()}{scaled}), and its runner was killed{retry}"
        )


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
