"""The worker protocol's messages (``core/protocol``): one definition each, JSON both ways, and the
server's request bodies derived from them with the API's limits."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pydantic import ValidationError as PydanticValidationError

from hightide.core.limits import MAX_ID_LENGTH
from hightide.core.protocol import (
    AttemptResult,
    AttemptSpan,
    ClaimMore,
    CompleteReply,
    CompleteRequest,
    Execute,
    Execution,
    LogRecord,
    Ready,
    ResultReply,
    Shutdown,
    Span,
    SpanEvent,
    StartFailed,
    from_json,
    pipe_json,
    read_pipe,
    to_json,
)
from hightide.server.worker_bodies import ClaimBody, CompleteBody, HeartbeatBody
from hightide.types import MAX_HEARTBEAT_RUNS, MAX_REPORT_RESULTS

EXECUTION = Execution(
    run_id="run_1",
    task_id="email",
    attempt=2,
    execution=3,
    payload={"to": "a@b"},
    tags=("x",),
    journal=({"seq": "0", "kind": "wait", "done": True},),
    max_duration=30.0,
    trace=AttemptSpan("0" * 32, "1" * 16),
)
LOG = LogRecord(run_id="run_1", attempt=2, time=1.5, message="hello", attributes={"k": 1}, span_id="1" * 16)
SPAN = Span(
    run_id="run_1",
    attempt=2,
    trace_id="0" * 32,
    span_id="2" * 16,
    parent_span_id="1" * 16,
    name="step charge",
    kind="step",
    seq="0",
    start_time=1.0,
    end_time=2.0,
    status="OK",
    events=(SpanEvent("retry", 1.5, {"n": 1}),),
)
SUSPENDED: AttemptResult[Any] = AttemptResult(
    "run_1", 2, False, waiting_on=("1",), execution=3, record=({"seq": "1", "kind": "wait", "resume_at": 9.0},)
)
PIPE = [
    Execute(EXECUTION),
    Shutdown(),
    Ready(123, {"tasks": [{"id": "email"}]}),
    StartFailed("ImportError: no", "Traceback ..."),
    LOG,
    SPAN,
    AttemptResult("run_1", 2, True, {"sent": True}, execution=3),
    SUSPENDED,
]


@pytest.mark.parametrize("message", PIPE, ids=lambda m: type(m).__name__)
def test_each_pipe_message_crosses_as_tagged_json_and_reads_back_equal(message: Any) -> None:
    data = pipe_json(message)
    assert isinstance(data["type"], str)
    assert read_pipe(data) == message


def test_an_unknown_pipe_message_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown message type"):
        read_pipe({"type": "hello"})


def test_a_result_carries_its_fields_and_nothing_else() -> None:
    """No private keys: what the supervisor keeps about an attempt is not in the message."""
    data = to_json(SUSPENDED)
    assert set(data) == {f.name for f in dataclasses.fields(AttemptResult)}
    assert not [key for key in data if key.startswith("_")]


def test_a_report_and_its_answer_read_back_equal() -> None:
    request = CompleteRequest("w1", (SUSPENDED,), (LOG,), (SPAN,), ClaimMore("ver_1", 4, "c1"))
    assert from_json(CompleteRequest, to_json(request)) == request
    reply = CompleteReply(
        (ResultReply("run_1", True, status="WAITING"), ResultReply("run_2", False, code="conflict", message="late")),
        (EXECUTION,),
    )
    assert from_json(CompleteReply, to_json(reply)) == reply


def test_a_result_reply_leaves_out_what_does_not_apply() -> None:
    assert to_json(ResultReply("run_1", True, status="COMPLETED")) == {
        "run_id": "run_1",
        "accepted": True,
        "status": "COMPLETED",
    }
    assert to_json(ResultReply("run_1", False, code="conflict", message="late")) == {
        "run_id": "run_1",
        "accepted": False,
        "code": "conflict",
        "message": "late",
    }


def test_a_validated_body_reads_back_into_its_message() -> None:
    body = CompleteBody.model_validate(to_json(CompleteRequest("w1", (SUSPENDED,), (LOG,), (SPAN,))))
    request = from_json(CompleteRequest, body)
    assert request.logs == (LOG,) and request.spans == (SPAN,)
    assert request.results[0].waiting_on == ("1",)


def test_the_derived_bodies_keep_the_api_limits() -> None:
    claim = ClaimBody.model_json_schema()["properties"]
    assert claim["worker_id"]["maxLength"] == MAX_ID_LENGTH
    assert claim["claim_id"]["anyOf"][0]["pattern"] == r"^[A-Za-z0-9_.:-]+$"
    assert HeartbeatBody.model_json_schema()["properties"]["runs"]["maxItems"] == MAX_HEARTBEAT_RUNS
    assert CompleteBody.model_json_schema()["properties"]["results"]["maxItems"] == MAX_REPORT_RESULTS
    with pytest.raises(PydanticValidationError, match="NUL"):
        CompleteBody.model_validate(to_json(CompleteRequest("w1", logs=(dataclasses.replace(LOG, message="a\x00"),))))
    with pytest.raises(PydanticValidationError, match="finite number"):
        CompleteBody.model_validate({"worker_id": "w1", "logs": [{**to_json(LOG), "time": float("nan")}]})
    with pytest.raises(PydanticValidationError, match="greater than or equal to 0"):
        ClaimBody.model_validate({"worker_id": "w", "version_id": "v", "max_runs": -1})


def test_messages_read_back_equal_those_built_and_missing_fields_are_refused() -> None:
    built = Execution(run_id="run_1", task_id="t", attempt=2, payload={"a": [1]}, tags=("x",))
    read = from_json(Execution, to_json(built))
    assert read == built
    first, second = (from_json(Execution, {"run_id": "run_1", "task_id": "t", "attempt": 1}) for _ in range(2))
    assert first.metadata == {} and first.metadata is not second.metadata  # a default factory per message
    with pytest.raises(dataclasses.FrozenInstanceError):
        read.attempt = 3  # type: ignore[misc]
    with pytest.raises(TypeError, match="task_id"):
        from_json(Execution, {"run_id": "run_1", "attempt": 1})
