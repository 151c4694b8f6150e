"""A runner never outlives its supervisor.

Runners start in sessions of their own (so Ctrl-C reaches only the supervisor) and nothing else
ties them to it: a supervisor killed with SIGKILL would leave its runners executing, while the
server retries their runs on another worker after the lease, and the same run would then execute
twice at once. Three guards, any of which suffices, end an orphaned runner within a second:

- on Linux, the kernel's parent-death signal (``PR_SET_PDEATHSIG``): SIGKILL when the parent exits;
- a watchdog thread that sees the supervisor's end of either pipe close (the input pipe hangs up,
  the output pipe has no reader);
- the same thread noticing that the parent process changed (``getppid``: the runner was re-parented).

The watchdog is a thread, not an asyncio task: a task that blocks the event loop, or a CPU loop in
a plain ``def``, must not keep it from acting (``os._exit`` ends the process from any thread).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import select
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1
CHECK_INTERVAL = 0.2  # seconds between checks of the parent; pipe hang-ups are seen at once
ORPHANED_EXIT_CODE = 70


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent exits (Linux only).
    Returns False where that is not available; the watchdog thread then does the work alone.

    The signal fires when the parent *thread* that started this process exits. Supervisors start
    runners from their event loop's thread, which lives as long as the supervisor."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _pipes_closed(poller: select.poll, timeout: float) -> bool:
    # Registered with no events: only POLLHUP / POLLERR / POLLNVAL are reported, so unread data
    # on the input pipe does not make this return early.
    return any(poller.poll(timeout * 1000))


class Watchdog:
    """Ends this process when ``parent_pid`` is gone or has closed its end of the pipes.

    Start it first thing in the runner: ``Watchdog(parent_pid, in_fd, out_fd).start()``."""

    def __init__(
        self, parent_pid: int, in_fd: int, out_fd: int, *, interval: float = CHECK_INTERVAL, death_signal: bool = True
    ) -> None:
        self.parent_pid = parent_pid
        self.fds = (in_fd, out_fd)
        self.interval = interval
        self.death_signal = death_signal  # False: the thread alone (where the kernel cannot help)

    def start(self) -> None:
        if self.death_signal:
            set_parent_death_signal()
        # The parent may have died before the death signal was armed: look once now, and exit.
        if self.orphaned_reason() is not None:
            self._exit(orphaned=True)
        threading.Thread(target=self._watch, name="hightide-runner-watchdog", daemon=True).start()

    def orphaned_reason(self) -> str | None:
        if os.getppid() != self.parent_pid:
            return f"its supervisor (pid {self.parent_pid}) is gone"
        return None

    def _watch(self) -> None:
        poller = select.poll()
        for fd in self.fds:
            poller.register(fd, 0)
        while True:
            hung_up = _pipes_closed(poller, self.interval)
            orphaned = self.orphaned_reason() is not None
            if hung_up or orphaned:
                self._exit(orphaned)

    def _exit(self, orphaned: bool) -> None:
        """End the process now, from any thread. No cleanup: nobody is left to report to, and user
        code must not run on. A hang-up while the supervisor lives is a deliberate one (it stops
        or retires this runner), not worth a message."""
        if orphaned:
            with contextlib.suppress(OSError):
                os.write(2, f"hightide runner {os.getpid()}: {self.orphaned_reason()}; exiting\n".encode())
        os._exit(ORPHANED_EXIT_CODE if orphaned else 0)
