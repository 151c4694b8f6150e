"""The typed messages of the worker protocol, one definition per message, imported by both sides.

- ``runs``: what a claim hands out (``Execution``) and what an attempt reports (``AttemptResult``,
  ``LogRecord``, ``Span``), on the pipe and over HTTP alike;
- ``pipe``: the supervisor ↔ runner messages (``Execute``, ``Shutdown``, ``Ready``, ``StartFailed``);
- ``worker_api``: the bodies and answers of ``/api/v1/worker/...``;
- ``fields``: the limits of their values; ``codec``: ``to_json`` and ``from_json`` for all of them.

Pure: no I/O. The framing of the pipe is ``worker/protocol.py``; the HTTP side is the worker's
``worker/api.py`` and the server's ``server/routes_worker.py``.
"""

from hightide.core.protocol.codec import from_json, to_json
from hightide.core.protocol.pipe import (
    Execute,
    FinalHooks,
    HooksDone,
    PipeMessage,
    Ready,
    Shutdown,
    StartFailed,
    pipe_json,
    read_pipe,
)
from hightide.core.protocol.runs import AttemptResult, AttemptSpan, Execution, LogRecord, Span, SpanEvent
from hightide.core.protocol.worker_api import (
    Claimed,
    ClaimMore,
    ClaimRequest,
    CompleteReply,
    CompleteRequest,
    HeartbeatReply,
    HeartbeatRequest,
    HeldRun,
    HooksDoneReply,
    HooksDoneRequest,
    OwedHooks,
    OwedHooksReply,
    OwedHooksRequest,
    Registered,
    RegisterRequest,
    ReleasedRun,
    ReleaseReply,
    ReleaseRequest,
    ResultReply,
)

__all__ = [
    "AttemptResult",
    "AttemptSpan",
    "ClaimMore",
    "ClaimRequest",
    "Claimed",
    "CompleteReply",
    "CompleteRequest",
    "Execute",
    "Execution",
    "FinalHooks",
    "HeartbeatReply",
    "HeartbeatRequest",
    "HeldRun",
    "HooksDone",
    "HooksDoneReply",
    "HooksDoneRequest",
    "LogRecord",
    "OwedHooks",
    "OwedHooksReply",
    "OwedHooksRequest",
    "PipeMessage",
    "Ready",
    "RegisterRequest",
    "Registered",
    "ReleaseReply",
    "ReleaseRequest",
    "ReleasedRun",
    "ResultReply",
    "Shutdown",
    "Span",
    "SpanEvent",
    "StartFailed",
    "from_json",
    "pipe_json",
    "read_pipe",
    "to_json",
]
