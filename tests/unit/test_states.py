"""The run state machine: which events may happen in which status."""

import pytest

from hightide.core.states import FINAL_STATUSES, RunEvent, RunStatus, sources, transition
from hightide.errors import ConflictError

S = RunStatus


@pytest.mark.parametrize(
    ("status", "event", "expected"),
    [
        (S.QUEUED, RunEvent.START, S.EXECUTING),
        (S.EXECUTING, RunEvent.COMPLETE, S.COMPLETED),
        (S.EXECUTING, RunEvent.RETRY, S.QUEUED),
        (S.EXECUTING, RunEvent.RELEASE, S.QUEUED),
        (S.EXECUTING, RunEvent.FAIL, S.FAILED),
        (S.EXECUTING, RunEvent.CRASH, S.CRASHED),
        (S.EXECUTING, RunEvent.TIME_OUT, S.TIMED_OUT),
        (S.DELAYED, RunEvent.ENQUEUE, S.QUEUED),
        (S.DELAYED, RunEvent.RESCHEDULE, S.DELAYED),
        (S.QUEUED, RunEvent.EXPIRE, S.EXPIRED),
        (S.DELAYED, RunEvent.EXPIRE, S.EXPIRED),
        (S.EXECUTING, RunEvent.SUSPEND, S.WAITING),
        (S.WAITING, RunEvent.RESUME, S.QUEUED),
    ],
)
def test_allowed_transitions(status: RunStatus, event: RunEvent, expected: RunStatus) -> None:
    assert transition(status, event) is expected


@pytest.mark.parametrize("status", [S.DELAYED, S.QUEUED, S.EXECUTING, S.WAITING, S.PENDING_VERSION])
def test_every_unfinished_run_can_be_cancelled(status: RunStatus) -> None:
    assert transition(status, RunEvent.CANCEL) is S.CANCELED


@pytest.mark.parametrize("final", sorted(FINAL_STATUSES))
@pytest.mark.parametrize("event", list(RunEvent))
def test_nothing_moves_a_finished_run(final: RunStatus, event: RunEvent) -> None:
    with pytest.raises(ConflictError) as info:
        transition(final, event)
    assert final.value in info.value.message


def test_a_late_completion_after_a_cancel_is_rejected() -> None:
    with pytest.raises(ConflictError, match="cannot complete a run that is CANCELED"):
        transition(S.CANCELED, RunEvent.COMPLETE)


def test_a_run_cannot_start_twice() -> None:
    with pytest.raises(ConflictError):
        transition(S.EXECUTING, RunEvent.START)


def test_expiry_only_before_start() -> None:
    assert S.EXECUTING not in sources(RunEvent.EXPIRE)


def test_status_is_a_str_enum_and_knows_finality() -> None:
    assert S.COMPLETED == "COMPLETED"
    assert S.COMPLETED.is_final and not S.WAITING.is_final


@pytest.mark.parametrize("status", [S.DELAYED, S.QUEUED, S.WAITING, S.PENDING_VERSION])
def test_only_an_executing_run_can_be_released(status: RunStatus) -> None:
    with pytest.raises(ConflictError, match=f"cannot release a run that is {status.value}"):
        transition(status, RunEvent.RELEASE)
