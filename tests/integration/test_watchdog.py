"""The runner's watchdog thread on its own (the kernel's parent-death signal left off), with real
processes: a process that spins in a CPU loop still exits when the other end of its pipes closes,
or when its parent dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.conftest import pid_alive
from tests.support import assert_eventually, written_number

# Watches the pipes and the parent given on the command line, then spins forever.
WATCHED = """
import os, sys
from pathlib import Path
from hightide.worker.watchdog import Watchdog
parent, fd_in, fd_out, marker = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
Watchdog(parent, fd_in, fd_out, death_signal=False).start()
Path(marker).write_text(str(os.getpid()))
n = 0
while True:
    n += 1
"""

# Starts WATCHED as its child (in a session of its own, as runners are), then waits to be killed.
MIDDLE = """
import os, subprocess, sys, time
fd_in, fd_out = int(sys.argv[1]), int(sys.argv[2])
subprocess.Popen(
    [sys.executable, "-c", sys.argv[3], str(os.getpid()), str(fd_in), str(fd_out), sys.argv[4]],
    pass_fds=(fd_in, fd_out), start_new_session=True,
)
os.close(fd_in)
os.close(fd_out)
time.sleep(3600)
"""


class Pipes:
    """The runner-side ends (``child_in``, ``child_out``) and the ends this test holds."""

    def __init__(self) -> None:
        self.child_in, self.ours_in = os.pipe()
        self.ours_out, self.child_out = os.pipe()

    def close_child_ends(self) -> None:
        os.close(self.child_in)
        os.close(self.child_out)


@pytest.fixture
def pipes() -> Iterator[Pipes]:
    p = Pipes()
    yield p
    for fd in (p.child_in, p.child_out, p.ours_in, p.ours_out):
        try:
            os.close(fd)
        except OSError:
            pass


def _started(marker: Path) -> int:
    return assert_eventually(lambda: written_number(marker), timeout=30, what="the watchdog")


def test_a_spinning_process_exits_when_its_supervisor_closes_the_pipe(pipes: Pipes, tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    child = subprocess.Popen(
        [sys.executable, "-c", WATCHED, str(os.getpid()), str(pipes.child_in), str(pipes.child_out), str(marker)],
        pass_fds=(pipes.child_in, pipes.child_out),
    )
    try:
        pipes.close_child_ends()
        _started(marker)
        assert child.poll() is None
        os.close(pipes.ours_in)  # what a dying supervisor's kernel does for it
        assert_eventually(lambda: child.poll() is not None, timeout=2.0, interval=0.02, what="the child to exit")
        assert child.returncode == 0  # the parent lives: a deliberate hang-up, not an orphan
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()


def test_a_spinning_process_exits_when_its_parent_dies_though_its_pipes_stay_open(pipes: Pipes, tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    middle = subprocess.Popen(
        [sys.executable, "-c", MIDDLE, str(pipes.child_in), str(pipes.child_out), WATCHED, str(marker)],
        pass_fds=(pipes.child_in, pipes.child_out),
    )
    try:
        pipes.close_child_ends()
        orphan = _started(marker)
        assert pid_alive(orphan)
        middle.send_signal(signal.SIGKILL)
        middle.wait()
        # This test still holds the other ends of both pipes: only the change of parent tells.
        assert_eventually(lambda: not pid_alive(orphan), timeout=2.0, interval=0.02, what=f"{orphan} to exit")
    finally:
        if middle.poll() is None:
            middle.kill()
            middle.wait()
        if (pid := written_number(marker)) and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
