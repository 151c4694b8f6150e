"""Messages between a supervisor and its runner processes: length-prefixed JSON over pipes.

A length prefix (not lines) so that a 3 MB output crosses in one message.
"""

from __future__ import annotations

import asyncio
import json
import struct
import threading
from typing import IO, Any

_HEADER = struct.Struct(">I")


def encode(message: dict[str, Any]) -> bytes:
    data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    return _HEADER.pack(len(data)) + data


async def read_message(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next message, or ``None`` when the other side closed the pipe."""
    try:
        header = await reader.readexactly(_HEADER.size)
        (size,) = _HEADER.unpack(header)
        return json.loads(await reader.readexactly(size))
    except asyncio.IncompleteReadError:
        return None


class BlockingChannel:
    """The runner's side: blocking reads, thread-safe writes (tasks may log from threads)."""

    def __init__(self, inp: IO[bytes], out: IO[bytes]) -> None:
        self._inp, self._out = inp, out
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        data = encode(message)
        with self._lock:
            self._out.write(data)
            self._out.flush()

    def receive(self) -> dict[str, Any] | None:
        header = self._inp.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack(header)
        return json.loads(self._inp.read(size))
