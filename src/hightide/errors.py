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

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

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


class AuthenticationError(HightideError):
    """A missing, malformed or unknown secret key."""

    code = "authentication_error"


class NotFoundError(HightideError):
    """The run, task or token does not exist in this environment."""

    code = "not_found"


class ConflictError(HightideError):
    """The request does not fit the current state (cancelling a finished run, a stale completion)."""

    code = "conflict"


class AlreadyExistsError(ConflictError):
    code = "already_exists"


class ConnectionError_(HightideError):
    """The Hightide server could not be reached."""

    code = "connection_error"


class ServerError(HightideError):
    code = "server_error"


class ConfigError(HightideError):
    """No configuration found, or a configuration value is invalid."""

    code = "config_error"


class AbortTaskRunError(Exception):
    """Raise inside a task to fail the run at once, without retrying it.

    >>> raise AbortTaskRunError("order was refunded; nothing to do")
    """


class RunCancelledSignal(BaseException):
    """Delivered inside a runner when its run is cancelled. A BaseException so tasks cannot swallow it."""


ERRORS_BY_CODE: dict[str, type[HightideError]] = {
    cls.code: cls
    for cls in (
        HightideError,
        ValidationError,
        PayloadTooLargeError,
        AuthenticationError,
        NotFoundError,
        ConflictError,
        AlreadyExistsError,
        ConnectionError_,
        ServerError,
        ConfigError,
    )
}
