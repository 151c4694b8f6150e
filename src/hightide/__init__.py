"""Hightide: background tasks for Python. Durable, observable, no timeouts.

>>> from hightide import task
>>> @task(id="hello-world")
... async def hello(payload: dict) -> str:
...     return f"Hello {payload['name']}"
>>> handle = await hello.trigger({"name": "Ada"})

Importing ``hightide`` never imports the server.
"""

from hightide.config import define_config
from hightide.core.states import RunStatus
from hightide.errors import (
    AbortTaskRunError,
    AuthenticationError,
    ConflictError,
    ConnectionError_,
    HightideError,
    NotFoundError,
    PayloadTooLargeError,
    ValidationError,
)
from hightide.sdk import runs
from hightide.sdk.client import AsyncClient
from hightide.sdk.context import Context
from hightide.sdk.defaults import configure
from hightide.sdk.logger import logger
from hightide.sdk.models import BatchHandle, Run, RunHandle
from hightide.sdk.sync import Client
from hightide.sdk.task import Queue, Task, queue, task, tasks

HightideConnectionError = ConnectionError_

__all__ = [
    "AbortTaskRunError",
    "AsyncClient",
    "AuthenticationError",
    "BatchHandle",
    "Client",
    "ConflictError",
    "Context",
    "HightideConnectionError",
    "HightideError",
    "NotFoundError",
    "PayloadTooLargeError",
    "Queue",
    "Run",
    "RunHandle",
    "RunStatus",
    "Task",
    "ValidationError",
    "configure",
    "define_config",
    "logger",
    "queue",
    "runs",
    "task",
    "tasks",
]
