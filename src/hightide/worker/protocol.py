"""The pipe between a supervisor and its runner processes: length-prefixed JSON, one message of
``core.protocol.pipe`` per frame.

A length prefix (not lines) so that a 3 MB output crosses in one message.
"""

from __future__ import annotations

import asyncio
import json
import struct
import threading
from typing import IO

from hightide.core.protocol import PipeMessage, pipe_json, read_pipe

_HEADER = struct.Struct(">I")


def encode(message: PipeMessage) -> bytes:
    data = json.dumps(pipe_json(message), separators=(",", ":"), ensure_ascii=False).encode()
    return _HEADER.pack(len(data)) + data


async def read_message(reader: asyncio.StreamReader) -> PipeMessage | None:
    """The next message, or ``None`` when the other side closed the pipe."""
    try:
        header = await reader.readexactly(_HEADER.size)
        (size,) = _HEADER.unpack(header)
        return read_pipe(json.loads(await reader.readexactly(size)))
    except asyncio.IncompleteReadError:
        return None


class BlockingChannel:
    """The runner's side: blocking reads, thread-safe writes (tasks may log from threads)."""

    def __init__(self, inp: IO[bytes], out: IO[bytes]) -> None:
        self._inp, self._out = inp, out
        self._lock = threading.Lock()

    def send(self, message: PipeMessage) -> None:
        data = encode(message)
        with self._lock:
            self._out.write(data)
            self._out.flush()

    def receive(self) -> PipeMessage | None:
        header = self._inp.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack(header)
        return read_pipe(json.loads(self._inp.read(size)))
