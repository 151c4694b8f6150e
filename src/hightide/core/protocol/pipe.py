"""Messages between a supervisor and its runner processes (framed by ``worker/protocol.py``).

Each crosses as its JSON object with a ``type`` tag: the supervisor sends ``Execute`` and
``Shutdown``; a runner answers ``Ready`` (or ``StartFailed``) once, then, per execution, any
number of ``LogRecord`` and ``Span`` messages and one ``AttemptResult``. ``FinalHooks`` asks a
fresh runner to run ``on_failure`` and ``on_complete`` for a run whose last attempt ended outside
its task (the runner died, or ``max_duration`` ran out); it answers with log records and
``HooksDone``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from hightide.core.protocol.codec import from_json, to_json
from hightide.core.protocol.fields import JSONObject
from hightide.core.protocol.runs import AttemptResult, Execution, LogRecord, Span


@dataclass(frozen=True)
class Execute:
    execution: Execution


@dataclass(frozen=True)
class FinalHooks:
    """Run the final hooks of ``execution``, which failed with ``error`` (a serialised failure)."""

    execution: Execution
    error: JSONObject


@dataclass(frozen=True)
class HooksDone:
    """The final hooks ran (their errors are log records)."""


@dataclass(frozen=True)
class Shutdown:
    """Exit once idle."""


@dataclass(frozen=True)
class Ready:
    """The runner imported the project's tasks: their manifest."""

    pid: int
    manifest: JSONObject


@dataclass(frozen=True)
class StartFailed:
    """The runner could not import the project's tasks."""

    message: str
    traceback: str = ""


PipeMessage: TypeAlias = (
    Execute | FinalHooks | HooksDone | Shutdown | Ready | StartFailed | LogRecord | Span | AttemptResult[JSONObject]
)

_TAGS: dict[type[Any], str] = {
    Execute: "execute",
    FinalHooks: "final_hooks",
    HooksDone: "hooks_done",
    Shutdown: "shutdown",
    Ready: "ready",
    StartFailed: "error",
    LogRecord: "log",
    Span: "span",
    AttemptResult: "result",
}
_TYPES = {tag: cls for cls, tag in _TAGS.items()}


def pipe_json(message: PipeMessage) -> dict[str, Any]:
    """``message`` as it crosses the pipe: its JSON object, tagged with its ``type``."""
    return {"type": _TAGS[type(message)], **to_json(message)}


def read_pipe(data: dict[str, Any]) -> PipeMessage:
    """The message of a JSON object read from the pipe. ``ValueError`` for an unknown ``type``."""
    cls = _TYPES.get(data.get("type", ""))
    if cls is None:
        raise ValueError(f"unknown message type {data.get('type')!r}")
    message: PipeMessage = from_json(cls, data)
    return message
