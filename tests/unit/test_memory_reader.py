"""The memory a runner is charged for includes the processes it started, found with one scan of
the process table for all runners."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from hightide.worker.memory import CHILDREN_EVERY, MemoryReader
from tests.support import assert_eventually

# A parent that starts a child holding 120 MB, then waits; each prints when its memory is held.
_PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "b = bytearray(120 * 2**20); print('held', flush=True); import time; time.sleep(60)"], stdout=sys.stdout)
time.sleep(60)
"""


def test_a_runner_is_charged_for_its_childrens_memory_and_a_plain_process_is_not() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    plain = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "held"
        reader = MemoryReader()
        clock = [0.0]

        def charged() -> dict[int, int]:
            clock[0] += CHILDREN_EVERY  # each reading may look for children again
            usage = reader.read([parent.pid, plain.pid], now=clock[0])
            assert usage[parent.pid] > 120 * 2**20, usage
            return usage

        usage = assert_eventually(charged, what="the parent charged for its child's 120 MB")
        assert usage[plain.pid] < 60 * 2**20  # an interpreter alone
        assert reader.last(parent.pid) == usage[parent.pid] and reader.last(12345678) == 0
    finally:
        os.killpg(parent.pid, signal.SIGKILL)  # the child too
        plain.kill()
        for process in (parent, plain):
            process.wait()
        assert parent.stdout is not None
        parent.stdout.close()
    # a process gone reads as 0, for itself and its children
    assert MemoryReader().read([parent.pid]) == {parent.pid: 0}
