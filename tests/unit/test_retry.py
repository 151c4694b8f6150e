"""Retry policy (SPEC §2): exponential backoff, jitter, caps, and which failures retry."""

import random

import pytest

from hightide.core.failures import Failure, FailureKind
from hightide.core.machines import PRESETS
from hightide.core.retry import RetryPolicy, decide_failure
from hightide.errors import AbortTaskRunError, OutOfMemoryError, ValidationError


def test_defaults_match_the_spec() -> None:
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.factor, policy.min_timeout, policy.max_timeout, policy.randomize) == (
        3,
        2.0,
        1.0,
        60.0,
        True,
    )


def test_backoff_is_exponential_without_jitter() -> None:
    policy = RetryPolicy(factor=2, min_timeout=1, max_timeout=100, randomize=False)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]


def test_backoff_is_capped() -> None:
    policy = RetryPolicy(factor=10, min_timeout=1, max_timeout=30, randomize=False)
    assert policy.delay(5) == 30


def test_jitter_stays_between_one_and_two_times_the_base() -> None:
    policy = RetryPolicy(factor=2, min_timeout=1, max_timeout=1000)
    rng = random.Random(7)
    delays = [policy.delay(3, rng) for _ in range(200)]
    assert all(4 <= d < 8 for d in delays)
    assert len(set(delays)) > 100  # actually random


@pytest.mark.parametrize(
    "bad",
    [
        {"max_attempts": 0},
        {"factor": 0.5},
        {"min_timeout": 5, "max_timeout": 1},
        {"nope": 1},
        {"out_of_memory": {"machine": "xl"}},
        {"out_of_memory": {"machine": "large-1x", "also": 1}},
        {"out_of_memory": "large-1x"},
    ],
)
def test_invalid_policies_are_rejected_with_a_message(bad: dict) -> None:
    with pytest.raises(ValidationError, match="retry"):
        RetryPolicy.from_dict(bad)


def test_errors_retry_until_attempts_run_out() -> None:
    policy = RetryPolicy(randomize=False)
    first = decide_failure(FailureKind.ERROR, 1, 3, policy)
    assert first.retry and first.delay == 1
    last = decide_failure(FailureKind.ERROR, 3, 3, policy)
    assert not last.retry and last.final_event == "fail"


def test_abort_never_retries() -> None:
    failure = Failure.from_exception(AbortTaskRunError("refunded"))
    assert failure.kind == FailureKind.ABORT
    decision = decide_failure(failure.kind, 1, 5, RetryPolicy())
    assert not decision.retry and decision.final_event == "fail"


def test_crashes_retry_then_end_crashed() -> None:
    assert decide_failure(FailureKind.CRASH, 1, 2, RetryPolicy()).retry
    assert decide_failure(FailureKind.CRASH, 2, 2, RetryPolicy()).final_event == "crash"


def test_timeouts_end_timed_out() -> None:
    assert decide_failure(FailureKind.TIMEOUT, 1, 1, RetryPolicy()).final_event == "time_out"


def test_failure_from_exception_keeps_name_message_and_stack() -> None:
    try:
        raise KeyError("missing")
    except KeyError as exc:
        failure = Failure.from_exception(exc)
    assert failure.name == "KeyError"
    assert "missing" in failure.message
    assert "test_failure_from_exception" in failure.stack_trace
    assert Failure.from_dict(failure.to_dict()) == failure


def test_out_of_memory_is_final_unless_the_policy_names_another_machine() -> None:
    policy = RetryPolicy.from_dict({"max_attempts": 3, "randomize": False, "out_of_memory": {"machine": "large-1x"}})
    assert policy.retry_machine("small-1x") == "large-1x"
    assert policy.retry_machine("large-1x") is None  # already there: nowhere bigger to go
    assert RetryPolicy().retry_machine("small-1x") is None

    moved = decide_failure(FailureKind.OUT_OF_MEMORY, 1, 3, policy, retry_machine="large-1x")
    assert moved.retry and moved.delay == 1
    final = decide_failure(FailureKind.OUT_OF_MEMORY, 1, 3, policy, retry_machine=None)
    assert not final.retry and final.final_event == "crash"
    # The move still counts against max_attempts.
    assert not decide_failure(FailureKind.OUT_OF_MEMORY, 3, 3, policy, retry_machine="large-1x").retry


def test_a_policy_without_a_machine_stores_as_before() -> None:
    assert "out_of_memory" not in RetryPolicy().to_dict()
    policy = RetryPolicy.from_dict({"out_of_memory": {"machine": "medium-2x"}})
    assert RetryPolicy.from_dict(policy.to_dict()) == policy


@pytest.mark.parametrize("exc", [OutOfMemoryError("too big"), MemoryError()])
def test_running_out_of_memory_in_python_is_an_out_of_memory_failure(exc: BaseException) -> None:
    assert Failure.from_exception(exc).kind == FailureKind.OUT_OF_MEMORY


def test_each_preset_limits_memory_by_the_scale() -> None:
    micro, large = PRESETS["micro"], PRESETS["large-2x"]
    assert micro.memory_limit() == 256 * 1024 * 1024 and micro.describe() == "0.25 vCPU, 0.25 GB"
    assert micro.memory_limit(0.5) == 128 * 1024 * 1024
    assert large.memory_limit() == 16 * 1024**3
