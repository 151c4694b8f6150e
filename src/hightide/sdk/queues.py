"""``queues``: list queues, pause and resume them, override their concurrency limit, with the default client.

>>> from hightide import queues
>>> await queues.pause("task/send-email")          # triggers are taken; nothing starts
>>> await queues.override_concurrency_limit("openai", 2)
>>> [q.name for q in await queues.list() if q.paused]
"""

from __future__ import annotations

import builtins

from hightide.sdk.defaults import default_client
from hightide.sdk.models import QueueInfo


async def list() -> builtins.list[QueueInfo]:
    """Every queue of the environment with its runs executing and queued now, by name."""
    return await default_client().queues.list()


async def retrieve(name: str) -> QueueInfo:
    return await default_client().queues.retrieve(name)


async def pause(name: str) -> QueueInfo:
    """Stop starting runs of ``name`` (a task's own queue is ``task/<id>``) until ``resume``."""
    return await default_client().queues.pause(name)


async def resume(name: str) -> QueueInfo:
    return await default_client().queues.resume(name)


async def override_concurrency_limit(name: str, limit: int) -> QueueInfo:
    """At most ``limit`` runs of ``name`` execute at once, whatever its tasks declare, until reset."""
    return await default_client().queues.override_concurrency_limit(name, limit)


async def reset_concurrency_limit(name: str) -> QueueInfo:
    """Back to the concurrency limit the queue's tasks declare."""
    return await default_client().queues.reset_concurrency_limit(name)
