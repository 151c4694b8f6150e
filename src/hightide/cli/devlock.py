"""One ``hightide dev`` per project: a second one would share the database and rewrite
``.hightide/dev.env`` under the first one's feet.

The lock is an ``fcntl.flock`` on ``.hightide/dev.lock``, held for the life of the process: the
kernel drops it when the process ends, however it ends (even ``kill -9``), so there is never a
stale lock to clean up. The file's content (pid, URL) only serves to name the holder.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import IO

from hightide.errors import ConfigError

LOCK_FILE = "dev.lock"


class DevLock:
    def __init__(self, path: Path, handle: IO[str]) -> None:
        self.path, self._handle = path, handle

    @classmethod
    def acquire(cls, state_dir: Path, api_url: str) -> DevLock:
        """Take the project's dev lock, or raise ``ConfigError`` naming the ``hightide dev`` holding it."""
        path = state_dir / LOCK_FILE
        handle = path.open("a+")  # not "w": truncating before holding the lock would erase the holder's name
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = _holder(handle.read())
            handle.close()
            raise ConfigError(
                f"`hightide dev` is already running in {state_dir.parent} ({holder}); "
                "stop it first, or use it: its URL and key are in .hightide/dev.env"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "url": api_url}) + "\n")
        handle.flush()
        return cls(path, handle)

    def release(self) -> None:
        self._handle.close()  # closing the last descriptor releases the flock


def _holder(text: str) -> str:
    try:
        data = json.loads(text)
        return f"pid {data['pid']}, {data['url']}"
    except (ValueError, KeyError, TypeError):
        return "starting"  # it holds the lock and has not written its name yet
