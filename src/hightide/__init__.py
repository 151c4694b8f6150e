"""Hightide: background tasks for Python. Durable, observable, no timeouts.

>>> from hightide import task
>>> @task(id="hello-world")
... async def hello(payload: dict) -> str:
...     return f"Hello {payload['name']}"
>>> handle = await hello.trigger({"name": "Ada"})

Importing ``hightide`` never imports the server.
"""

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
