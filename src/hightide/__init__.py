"""Hightide: background tasks for Python. Durable, observable, no timeouts.

>>> from hightide import task
>>> @task(id="hello-world")
... async def hello(payload: dict) -> str:
...     return f"Hello {payload['name']}"
>>> handle = await hello.trigger({"name": "Ada"})

Importing ``hightide`` never imports the server, and loads each name when it is first used: the
server, the worker and the commands, which live in this package, start without the SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hightide.config import define_config
    from hightide.core.retry import RetryDecision
    from hightide.core.states import RunStatus
    from hightide.errors import (
        AbortTaskRunError,
        AuthenticationError,
        ConflictError,
        DurableCallError,
        HightideConnectionError,
        HightideError,
        NonDeterminismError,
        NotFoundError,
        OutOfMemoryError,
        OutputSerializationError,
        PayloadTooLargeError,
        PayloadValidationError,
        SubtaskUnwrapError,
        ValidationError,
        WaitpointTimeoutError,
    )
    from hightide.sdk import alerts, auth, queues, runs, schedules
    from hightide.sdk.client import AsyncClient
    from hightide.sdk.context import Context
    from hightide.sdk.defaults import configure
    from hightide.sdk.hooks import CompleteResult, RetryInfo, WaitInfo
    from hightide.sdk.idempotency import idempotency_keys
    from hightide.sdk.locals import locals
    from hightide.sdk.logger import logger
    from hightide.sdk.metadata import metadata
    from hightide.sdk.models import (
        AlertDelivery,
        AlertInfo,
        BatchHandle,
        BatchResult,
        BulkAction,
        QueueInfo,
        Run,
        RunHandle,
        ScheduleInfo,
        TaskRunResult,
        Token,
        WaitpointTokenResult,
    )
    from hightide.sdk.schedules import ScheduledPayload
    from hightide.sdk.steps import step
    from hightide.sdk.sync import Client
    from hightide.sdk.tags import tags
    from hightide.sdk.task import Queue, Task, queue, task, tasks
    from hightide.sdk.waits import wait

# Where each name is defined, as imported above for type checkers (a test keeps the two alike).
_FROM: dict[str, tuple[str, ...]] = {
    "hightide.config": ("define_config",),
    "hightide.core.retry": ("RetryDecision",),
    "hightide.core.states": ("RunStatus",),
    "hightide.errors": (
        "AbortTaskRunError",
        "AuthenticationError",
        "ConflictError",
        "DurableCallError",
        "HightideConnectionError",
        "HightideError",
        "NonDeterminismError",
        "NotFoundError",
        "OutOfMemoryError",
        "OutputSerializationError",
        "PayloadTooLargeError",
        "PayloadValidationError",
        "SubtaskUnwrapError",
        "ValidationError",
        "WaitpointTimeoutError",
    ),
    "hightide.sdk": (
        "alerts",
        "auth",
        "queues",
        "runs",
        "schedules",
    ),
    "hightide.sdk.client": ("AsyncClient",),
    "hightide.sdk.context": ("Context",),
    "hightide.sdk.defaults": ("configure",),
    "hightide.sdk.hooks": (
        "CompleteResult",
        "RetryInfo",
        "WaitInfo",
    ),
    "hightide.sdk.idempotency": ("idempotency_keys",),
    "hightide.sdk.locals": ("locals",),
    "hightide.sdk.logger": ("logger",),
    "hightide.sdk.metadata": ("metadata",),
    "hightide.sdk.models": (
        "AlertDelivery",
        "AlertInfo",
        "BatchHandle",
        "BatchResult",
        "BulkAction",
        "QueueInfo",
        "Run",
        "RunHandle",
        "ScheduleInfo",
        "TaskRunResult",
        "Token",
        "WaitpointTokenResult",
    ),
    "hightide.sdk.schedules": ("ScheduledPayload",),
    "hightide.sdk.steps": ("step",),
    "hightide.sdk.sync": ("Client",),
    "hightide.sdk.tags": ("tags",),
    "hightide.sdk.task": (
        "Queue",
        "Task",
        "queue",
        "task",
        "tasks",
    ),
    "hightide.sdk.waits": ("wait",),
}
_MODULE_OF = {name: module for module, names in _FROM.items() for name in names}

__all__ = [
    "AbortTaskRunError",
    "AlertDelivery",
    "AlertInfo",
    "AsyncClient",
    "AuthenticationError",
    "BatchHandle",
    "BatchResult",
    "BulkAction",
    "Client",
    "CompleteResult",
    "ConflictError",
    "Context",
    "DurableCallError",
    "HightideConnectionError",
    "HightideError",
    "NonDeterminismError",
    "NotFoundError",
    "OutOfMemoryError",
    "OutputSerializationError",
    "PayloadTooLargeError",
    "PayloadValidationError",
    "Queue",
    "QueueInfo",
    "RetryDecision",
    "RetryInfo",
    "Run",
    "RunHandle",
    "RunStatus",
    "ScheduleInfo",
    "ScheduledPayload",
    "SubtaskUnwrapError",
    "Task",
    "TaskRunResult",
    "Token",
    "ValidationError",
    "WaitInfo",
    "WaitpointTimeoutError",
    "WaitpointTokenResult",
    "alerts",
    "auth",
    "configure",
    "define_config",
    "idempotency_keys",
    "locals",
    "logger",
    "metadata",
    "queue",
    "queues",
    "runs",
    "schedules",
    "step",
    "tags",
    "task",
    "tasks",
    "wait",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'hightide' has no attribute {name!r}")
    loaded = importlib.import_module(module)
    # ``alerts``, ``runs``...: a module of the package, loaded on its own.
    value = getattr(loaded, name) if hasattr(loaded, name) else importlib.import_module(f"{module}.{name}")
    globals()[name] = value  # from now on a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
