"""Run statuses and the one transition function every state change goes through."""

from __future__ import annotations

from enum import StrEnum

from hightide.errors import ConflictError


class RunStatus(StrEnum):
    PENDING_VERSION = "PENDING_VERSION"
    DELAYED = "DELAYED"
    QUEUED = "QUEUED"
    EXECUTING = "EXECUTING"
    WAITING = "WAITING"
    COMPLETED = "COMPLETED"
    CANCELED = "CANCELED"
    FAILED = "FAILED"
    CRASHED = "CRASHED"
    SYSTEM_FAILURE = "SYSTEM_FAILURE"
    EXPIRED = "EXPIRED"
    TIMED_OUT = "TIMED_OUT"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {
        RunStatus.COMPLETED,
        RunStatus.CANCELED,
        RunStatus.FAILED,
        RunStatus.CRASHED,
        RunStatus.SYSTEM_FAILURE,
        RunStatus.EXPIRED,
        RunStatus.TIMED_OUT,
    }
)
FAILED_STATUSES = FINAL_STATUSES - {RunStatus.COMPLETED}
UNSTARTED_STATUSES = frozenset({RunStatus.PENDING_VERSION, RunStatus.DELAYED, RunStatus.QUEUED})


class RunEvent(StrEnum):
    ENQUEUE = "enqueue"  # a delay passed or a version appeared
    START = "start"  # a worker claimed the run
    COMPLETE = "complete"
    RETRY = "retry"  # the attempt failed and another is scheduled
    RELEASE = "release"  # its worker gave the run back unfinished (stopping): queued again, no attempt used
    FAIL = "fail"  # the attempt failed and no attempt is left (or it was aborted)
    CRASH = "crash"  # the runner process or its worker died and no attempt is left
    TIME_OUT = "time_out"  # max_duration exceeded and no attempt is left
    CANCEL = "cancel"
    EXPIRE = "expire"  # ttl passed before the run started
    RESCHEDULE = "reschedule"
    SUSPEND = "suspend"  # the run waits on a waitpoint and released its process
    RESUME = "resume"
    SYSTEM_FAIL = "system_fail"


_S = RunStatus
_ACTIVE = {_S.PENDING_VERSION, _S.DELAYED, _S.QUEUED, _S.EXECUTING, _S.WAITING}

_TABLE: dict[RunEvent, tuple[frozenset[RunStatus], RunStatus]] = {
    RunEvent.ENQUEUE: (frozenset({_S.PENDING_VERSION, _S.DELAYED}), _S.QUEUED),
    RunEvent.START: (frozenset({_S.QUEUED}), _S.EXECUTING),
    RunEvent.COMPLETE: (frozenset({_S.EXECUTING}), _S.COMPLETED),
    RunEvent.RETRY: (frozenset({_S.EXECUTING}), _S.QUEUED),
    RunEvent.RELEASE: (frozenset({_S.EXECUTING}), _S.QUEUED),
    RunEvent.FAIL: (frozenset({_S.EXECUTING}), _S.FAILED),
    RunEvent.CRASH: (frozenset({_S.EXECUTING}), _S.CRASHED),
    RunEvent.TIME_OUT: (frozenset({_S.EXECUTING}), _S.TIMED_OUT),
    RunEvent.CANCEL: (frozenset(_ACTIVE), _S.CANCELED),
    RunEvent.EXPIRE: (frozenset(UNSTARTED_STATUSES), _S.EXPIRED),
    RunEvent.RESCHEDULE: (frozenset({_S.DELAYED}), _S.DELAYED),
    RunEvent.SUSPEND: (frozenset({_S.EXECUTING}), _S.WAITING),
    RunEvent.RESUME: (frozenset({_S.WAITING}), _S.QUEUED),
    RunEvent.SYSTEM_FAIL: (frozenset(_ACTIVE), _S.SYSTEM_FAILURE),
}


def sources(event: RunEvent) -> frozenset[RunStatus]:
    """The statuses from which ``event`` may happen."""
    return _TABLE[event][0]


def transition(current: RunStatus | str, event: RunEvent) -> RunStatus:
    """Return the status after ``event``, or raise ``ConflictError`` if it cannot happen now.

    >>> transition("QUEUED", RunEvent.START)
    <RunStatus.EXECUTING: 'EXECUTING'>
    """
    status = RunStatus(current)
    allowed, target = _TABLE[event]
    if status not in allowed:
        raise ConflictError(
            f"cannot {event.value} a run that is {status.value}",
            details={"status": status.value, "event": event.value},
        )
    return target
