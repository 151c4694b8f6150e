"""Queues: their runs now, and what users set on them: pause and resume, and a concurrency limit
that overrides the one the tasks declare (until it is reset). A new version keeps both."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field

from hightide.core.limits import MAX_INT, MAX_NAME_LENGTH, check_text
from hightide.core.states import RunStatus
from hightide.engine.base import EngineCore
from hightide.errors import NotFoundError, ValidationError
from hightide.store.records import Environment, Queue


@dataclass(frozen=True)
class QueueState:
    """A queue with its runs now: ``executing`` and ``queued`` counts, and the tasks of the current
    version that use it (none: a queue that only runs name, or that the current version dropped)."""

    queue: Queue
    executing: int = 0
    queued: int = 0
    tasks: builtins.list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.queue.name


class Queues:
    def __init__(self, core: EngineCore) -> None:
        self.core = core
        self.store = core.store

    def list(self, env: Environment) -> list[QueueState]:
        """Every queue of the environment, declared or named by its queued and executing runs, by name."""
        queues = {q.name: q for q in self.store.queues.list_queues(env.id)}
        counts = self.store.runs.count_active_by_queue(env.id)
        users = self._users(env)
        return [
            self._state(queues.get(name, Queue(name, None)), counts, users)
            for name in sorted(set(queues) | set(counts))
        ]

    def get(self, env: Environment, name: str) -> QueueState:
        check_text(name, "queue", MAX_NAME_LENGTH)
        queue = self.store.queues.get_queue(env.id, name)
        counts = self.store.runs.count_active_by_queue(env.id)
        if queue is None and name not in counts:
            raise NotFoundError(
                f"no queue {name!r} in this environment: queues are those tasks declare (a task's own is "
                f"'task/<id>') and those queued or executing runs name",
                details={"queue": name},
            )
        return self._state(queue or Queue(name, None), counts, self._users(env))

    def pause(self, env: Environment, name: str) -> QueueState:
        """Runs of the queue stop starting (triggers are still taken; executing runs go on)."""
        self.get(env, name)
        self.store.queues.set_paused(env.id, name, True, self.core.clock())
        return self.get(env, name)

    def resume(self, env: Environment, name: str) -> QueueState:
        self.get(env, name)
        self.store.queues.set_paused(env.id, name, False, self.core.clock())
        return self.get(env, name)

    def override_concurrency_limit(self, env: Environment, name: str, limit: int) -> QueueState:
        """At most ``limit`` runs of the queue execute at once, whatever its tasks declare, until reset."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_INT:
            raise ValidationError(
                f"concurrency_limit: expected a whole number from 0 to {MAX_INT}",
                details={"field": "concurrency_limit"},
            )
        self.get(env, name)
        self.store.queues.set_limit_override(env.id, name, limit, self.core.clock())
        return self.get(env, name)

    def reset_concurrency_limit(self, env: Environment, name: str) -> QueueState:
        """Back to the limit its tasks declare."""
        self.get(env, name)
        self.store.queues.set_limit_override(env.id, name, None, self.core.clock())
        return self.get(env, name)

    def _users(self, env: Environment) -> dict[str, builtins.list[str]]:
        users: dict[str, builtins.list[str]] = {}
        version = self.store.environments.current_version(env.id)
        if version is not None:
            for task in self.store.environments.tasks_of_version(env.id, version.id):
                users.setdefault(task.queue, []).append(task.task_id)
        return users

    @staticmethod
    def _state(queue: Queue, counts: dict[str, dict[str, int]], users: dict[str, builtins.list[str]]) -> QueueState:
        n = counts.get(queue.name, {})
        return QueueState(
            queue, n.get(RunStatus.EXECUTING.value, 0), n.get(RunStatus.QUEUED.value, 0), users.get(queue.name, [])
        )
