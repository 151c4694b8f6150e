"""Serialised failures: how an error travels from a runner to the store and back to users."""

from __future__ import annotations

import traceback
from dataclasses import asdict, dataclass
from typing import Any

from hightide.errors import AbortTaskRunError, HightideError, NonDeterminismError, OutOfMemoryError


class FailureKind:
    """Why an attempt failed; decides the final status and whether retries apply."""

    ERROR = "error"  # the task raised: retried, then FAILED
    ABORT = "abort"  # AbortTaskRunError: FAILED at once
    CRASH = "crash"  # the runner process died, or its worker: retried, then CRASHED
    TIMEOUT = "timeout"  # max_duration exceeded: retried, then TIMED_OUT
    OUT_OF_MEMORY = "out_of_memory"  # over the machine's memory: CRASHED, unless the task's
    # retry names a machine for it (retry={"out_of_memory": {"machine": ...}}): retried there once
    SYSTEM = "system"  # Hightide itself could not run it (output over the limit, lost task): SYSTEM_FAILURE
    INVALID = "invalid"  # the run cannot work as called (payload refused by its model, output not JSON,
    # durable calls from a plain `def`): FAILED at once, since every retry would fail the same way


@dataclass(frozen=True)
class Failure:
    name: str
    message: str
    stack_trace: str = ""
    kind: str = FailureKind.ERROR

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Failure:
        return cls(
            name=str(data.get("name", "Error")),
            message=str(data.get("message", "")),
            stack_trace=str(data.get("stack_trace", "")),
            kind=str(data.get("kind", FailureKind.ERROR)),
        )

    @classmethod
    def from_exception(cls, exc: BaseException) -> Failure:
        # A non-deterministic replay fails the same way on every retry: do not retry it.
        if isinstance(exc, AbortTaskRunError | NonDeterminismError):
            kind = FailureKind.ABORT
        elif isinstance(exc, OutOfMemoryError | MemoryError):
            kind = FailureKind.OUT_OF_MEMORY
        elif isinstance(exc, HightideError) and not exc.retried:
            kind = FailureKind.INVALID
        else:
            kind = FailureKind.ERROR
        return cls(
            name=type(exc).__name__,
            message=str(exc),
            stack_trace="".join(traceback.format_exception(exc)),
            kind=kind,
        )
