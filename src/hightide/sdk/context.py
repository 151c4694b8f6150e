"""The run context: what a task knows about the run it is executing (``ctx``)."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Any

from hightide.core.machines import DEFAULT_PRESET, Machine, preset
from hightide.core.protocol import Execution


@dataclass(frozen=True)
class RunInfo:
    id: str
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None
    started_at: str | None = None
    parent_run_id: str | None = None
    root_run_id: str | None = None
    max_attempts: int = 1


@dataclass(frozen=True)
class AttemptInfo:
    number: int


@dataclass(frozen=True)
class TaskInfo:
    id: str


@dataclass(frozen=True)
class EnvironmentInfo:
    slug: str


@dataclass(frozen=True)
class QueueInfo:
    name: str


@dataclass(frozen=True)
class Context:
    """Passed to a task that declares a ``ctx: Context`` parameter.

    >>> @task(id="report")
    ... async def report(payload: dict, ctx: Context) -> str:
    ...     return f"{ctx.task.id} run {ctx.run.id}, attempt {ctx.attempt.number}"
    """

    run: RunInfo
    attempt: AttemptInfo
    task: TaskInfo
    environment: EnvironmentInfo
    queue: QueueInfo
    version: str | None = None
    machine: Machine = DEFAULT_PRESET  # the preset this attempt runs on: ctx.machine.name, .cpu, .memory_gb

    @classmethod
    def from_execution(cls, execution: Execution) -> Context:
        return cls(
            run=RunInfo(
                id=execution.run_id,
                tags=list(execution.tags),
                metadata=dict(execution.metadata),
                created_at=execution.created_at,
                started_at=execution.started_at,
                parent_run_id=execution.parent_run_id,
                root_run_id=execution.root_run_id,
                max_attempts=execution.max_attempts,
            ),
            attempt=AttemptInfo(execution.attempt),
            task=TaskInfo(execution.task_id),
            environment=EnvironmentInfo(execution.environment),
            queue=QueueInfo(execution.queue or f"task/{execution.task_id}"),
            version=execution.version,
            machine=preset(execution.machine),
        )


current: contextvars.ContextVar[Context | None] = contextvars.ContextVar("hightide_context", default=None)


def current_context() -> Context | None:
    """The context of the run executing here, or ``None`` outside a task."""
    return current.get()
