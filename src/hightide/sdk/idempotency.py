"""``idempotency_keys``: keys that make triggering (and waiting) safe to repeat."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from hightide.errors import ValidationError
from hightide.sdk.context import current_context
from hightide.sdk.defaults import default_client

SCOPES = ("run", "attempt", "global")


class IdempotencyKeys:
    async def create(self, key: str | Sequence[str], *, scope: str = "run") -> str:
        """A key for ``trigger(..., idempotency_key=key)``. Scope ``"run"`` (the default) ties it to the
        current run, so a retried parent finds the child it triggered before; ``"attempt"`` to the
        current attempt; ``"global"`` to nothing (the same key everywhere). Outside a task every
        scope is global.

        >>> key = await idempotency_keys.create(order_id)
        >>> await charge.trigger_and_wait({"order": order_id}, idempotency_key=key).unwrap()
        """
        if scope not in SCOPES:
            raise ValidationError(f"idempotency_keys.create: scope must be one of {', '.join(SCOPES)}")
        parts = [key] if isinstance(key, str) else list(key)
        if not parts or not all(isinstance(p, str) and p for p in parts):
            raise ValidationError("idempotency_keys.create: the key must be a non-empty string (or strings)")
        ctx = current_context()
        if ctx is not None and scope == "run":
            parts = [*parts, "run", ctx.run.id]
        elif ctx is not None and scope == "attempt":
            parts = [*parts, "attempt", ctx.run.id, str(ctx.attempt.number)]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()

    async def reset(self, task_id: str, key: str) -> bool:
        """Forget ``key`` for ``task_id``: the next trigger with it starts a new run. ``True`` if a run
        held the key."""
        return await default_client().reset_idempotency_key(task_id, key)


idempotency_keys = IdempotencyKeys()
