"""The one error tree of Hightide.

Every error a user can meet is a ``HightideError`` with a stable ``code``. The server maps codes to
HTTP statuses in one place (``server/errors.py``) and the SDK maps them back to these classes, so
``except hightide.NotFoundError`` works the same in a task, in a backend and in the CLI.

Signals that must not be swallowed by a user's ``except Exception:`` derive from ``BaseException``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class HightideError(Exception):
    """Base of every Hightide error. ``code`` is stable and documented; ``message`` is for people."""

    code: ClassVar[str] = "error"
    retried: ClassVar[bool] = True
    """Whether a run that fails with it is retried: not when the same call fails the same way."""

    def __init__(self, message: str, *, details: dict[str, Any] | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code is not None and code != self.code:  # a server's code that this version has no class for
            self.code = code  # type: ignore[misc]

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class ValidationError(HightideError):
    """Bad input: a malformed payload, an invalid duration, a payload failing the task's model."""

    code = "validation_error"


class PayloadTooLargeError(ValidationError):
    code = "payload_too_large"


class PayloadValidationError(ValidationError):
    """The payload does not pass the task's payload model (Pydantic's reasons, field by field).

    Raised by ``my_task.trigger(...)`` before anything is sent, and in the runner when a run's
    payload fails the model there: that run fails at once, since every retry would fail the same way.
    """

    retried = False


class OutputSerializationError(HightideError):
    """A task returned a value that cannot be converted to JSON: the run fails at once."""

    code = "output_not_serializable"
    retried = False


class DurableCallError(HightideError):
    """A durable call (``wait.*``, ``trigger_and_wait``, ``step``...) made where it cannot work: from a
    plain ``def`` task (which runs in a thread), or never awaited. The run fails at once."""

    code = "durable_call_error"
    retried = False


class AuthenticationError(HightideError):
    """A missing, malformed or unknown secret key."""

    code = "authentication_error"


class PermissionDeniedError(AuthenticationError):
    """Valid credentials that do not allow this (a public access token outside what it names, or
    on an operation that needs a secret key). HTTP 403."""

    code = "permission_denied"


class NotFoundError(HightideError):
    """The run, task or token does not exist in this environment."""

    code = "not_found"


class ConflictError(HightideError):
    """The request does not fit the current state (cancelling a finished run, a stale completion)."""

    code = "conflict"


class AlreadyExistsError(ConflictError):
    code = "already_exists"


class HightideConnectionError(HightideError):
    """The Hightide server could not be reached."""

    code = "connection_error"


class ServerError(HightideError):
    code = "server_error"


TRANSIENT_ERRORS = (HightideConnectionError, ServerError)
"""The errors a call may meet again and again then succeed: the server unreachable, failing, busy
or behind a proxy that answered for it. Any other is the server refusing the request itself."""


class ConfigError(HightideError):
    """No configuration found, or a configuration value is invalid."""

    code = "config_error"


class NonDeterminismError(HightideError):
    """On replay, a run reached a durable operation other than the one its journal recorded at that
    position: the task's code changed, or it branches on something outside its durable operations."""

    code = "non_determinism"
    retried = False


class WaitpointTimeoutError(HightideError):
    """A waitpoint token was not completed before its timeout (``result.error`` of ``wait.for_token``)."""

    code = "waitpoint_timeout"


class SubtaskUnwrapError(Exception):
    """``.unwrap()`` of a child run that did not complete: carries the child's run id and error.

    >>> try:
    ...     output = await child.trigger_and_wait(payload).unwrap()
    ... except SubtaskUnwrapError as exc:
    ...     logger.error("child failed", run_id=exc.run_id, error=exc.error)
    """

    def __init__(self, run_id: str, task_id: str, error: dict[str, Any] | None) -> None:
        err = error or {}
        super().__init__(
            f"child run {run_id} of task {task_id!r} did not complete: {err.get('name', 'Error')}: "
            f"{err.get('message', '')}"
        )
        self.run_id = run_id
        self.task_id = task_id
        self.error = err


class AbortTaskRunError(Exception):
    """Raise inside a task to fail the run at once, without retrying it.

    >>> raise AbortTaskRunError("order was refunded; nothing to do")
    """


class OutOfMemoryError(Exception):
    """A run used more memory than its machine gives it. The worker fails an attempt with it when it
    kills a runner over its preset's limit; raise it yourself (or let Python's ``MemoryError``
    through) to fail the same way. The run is retried only on the machine that the task's
    ``retry={"out_of_memory": {"machine": ...}}`` names, and otherwise ends ``CRASHED``.

    >>> raise OutOfMemoryError("the video is larger than this machine can decode")
    """


class AttemptFailedError(HightideError):
    """The error ``on_failure`` and ``on_complete`` receive when the attempt ended outside the task:
    its runner process died (``CRASHED``), was killed over its machine's memory (``CRASHED``) or it ran
    past ``max_duration`` (``TIMED_OUT``). The hooks then run in a fresh runner; ``name`` is the
    failure's name (``RunnerCrashed``, ``OutOfMemoryError``, ``MaxDurationExceeded``) and ``kind``
    its kind (``crash``, ``out_of_memory``, ``timeout``)."""

    code = "attempt_failed"

    def __init__(self, name: str, message: str, kind: str) -> None:
        super().__init__(f"{name}: {message}", details={"name": name, "kind": kind})
        self.name = name
        self.kind = kind


class RunCancelledSignal(BaseException):
    """Delivered inside a runner when its run is cancelled. A BaseException so tasks cannot swallow it."""


class RunSuspendedSignal(BaseException):
    """Delivered inside a runner to the durable operations a run waits on, when the run is suspended.
    A BaseException so tasks cannot swallow it: the run continues after its wait on a later replay."""


ERRORS_BY_CODE: dict[str, type[HightideError]] = {
    cls.code: cls
    for cls in (
        HightideError,
        ValidationError,
        PayloadTooLargeError,
        AuthenticationError,
        PermissionDeniedError,
        NotFoundError,
        ConflictError,
        AlreadyExistsError,
        HightideConnectionError,
        ServerError,
        ConfigError,
        NonDeterminismError,
        WaitpointTimeoutError,
        OutputSerializationError,
        DurableCallError,
    )
}
