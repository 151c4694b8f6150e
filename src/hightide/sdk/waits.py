"""``wait``: pause a run for a duration, until a date, or until a token is completed, without holding
a process (see docs/durable-execution.md). Tokens can be created and completed anywhere."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from hightide.core.limits import check_time
from hightide.errors import ConflictError, ValidationError, WaitpointTimeoutError
from hightide.sdk.client import Duration, _options
from hightide.sdk.defaults import default_client
from hightide.sdk.journal import current_journal, durable, perform
from hightide.sdk.models import Token, WaitpointTokenResult
from hightide.sdk.tracing import human_seconds


class Wait:
    @durable("wait.for_()")
    async def for_(
        self,
        delta: timedelta | float | None = None,
        *,
        seconds: float = 0,
        minutes: float = 0,
        hours: float = 0,
        days: float = 0,
        weeks: float = 0,
        idempotency_key: str | None = None,
        idempotency_key_ttl: Duration | None = None,
    ) -> None:
        """Inside a task: continue after this long. Longer than the checkpoint threshold, the run is
        suspended (``WAITING``, no process held) and resumed on any worker.

        >>> await wait.for_(seconds=30)
        >>> await wait.for_(timedelta(hours=2))
        """
        if isinstance(delta, timedelta):
            extra = delta.total_seconds()
        elif delta is None:
            extra = 0.0
        else:
            extra = float(delta)
        total = extra + seconds + 60 * minutes + 3600 * hours + 86400 * days + 604800 * weeks
        if total < 0:
            raise ValidationError(f"wait.for_: the duration must not be negative (got {total:g}s)")
        label = f"wait.for_ {human_seconds(total)}"
        await self._wait_until(time.time() + total, idempotency_key, idempotency_key_ttl, "wait.for_()", label)

    @durable("wait.until()")
    async def until(
        self, date: datetime, *, idempotency_key: str | None = None, idempotency_key_ttl: Duration | None = None
    ) -> None:
        """Inside a task: continue at ``date`` (a naive datetime is local time, as in Python). A past
        date returns at once."""
        if not isinstance(date, datetime):
            raise ValidationError("wait.until: expected a datetime")
        label = f"wait.until {date.isoformat()}"
        await self._wait_until(date.timestamp(), idempotency_key, idempotency_key_ttl, "wait.until()", label)

    async def _wait_until(self, when: float, key: str | None, key_ttl: Duration | None, what: str, label: str) -> None:
        check_time(when, what)  # refused here, the run fails with it; sent, it would fail the report
        body = _options({"resume_at": when, "idempotency_key": key, "idempotency_key_ttl": key_ttl})
        await perform("wait", "duration", body, what, label)

    @durable("wait.create_token()")
    async def create_token(
        self,
        *,
        timeout: Duration | None = None,
        tags: Iterable[str] | str | None = None,
        idempotency_key: str | None = None,
        idempotency_key_ttl: Duration | None = None,
    ) -> Token:
        """A token that a run can wait for, completed with ``wait.complete_token`` or by POSTing JSON
        to ``token.url``. Works anywhere; inside a task it is created once per run.

        >>> token = await wait.create_token(timeout="10m", tags=["approval"])
        """
        client = default_client()
        if current_journal() is None:
            return await client.waitpoints.create_token(
                timeout=timeout, tags=tags, idempotency_key=idempotency_key, idempotency_key_ttl=idempotency_key_ttl
            )
        options = _options(
            {"timeout": timeout, "tags": [tags] if isinstance(tags, str) else tags, "idempotency_key": idempotency_key}
        )
        options.update(_options({"idempotency_key_ttl": idempotency_key_ttl}))
        entry = await perform("create_token", "token", {"token": options}, "wait.create_token()", "wait.create_token")
        return Token.from_json(entry["result"], client.api_url)

    @durable("wait.for_token()")
    async def for_token(self, token: Token | str) -> WaitpointTokenResult[Any]:
        """Inside a task: wait until the token is completed (``ok``, ``output``) or times out
        (``ok=False``, ``error`` is a ``WaitpointTimeoutError``). The run is suspended meanwhile."""
        token_id = token.id if isinstance(token, Token) else token
        entry = await perform("wait_for_token", token_id, {"token_id": token_id}, "wait.for_token()")
        result = entry["result"]
        if result["ok"]:
            return WaitpointTokenResult(True, result.get("output"))
        error = result.get("error") or {}
        # A token times out, or is cancelled with the run that created it.
        cls = ConflictError if error.get("name") == "WaitpointCanceled" else WaitpointTimeoutError
        return WaitpointTokenResult(False, None, cls(error.get("message", "timed out"), details=error))

    @durable("wait.complete_token()")
    async def complete_token(self, token: Token | str, data: Any = None) -> None:
        """Complete a token with ``data`` (its waiting runs continue with it). Works anywhere; raises
        ``ConflictError`` if the token is no longer waiting (timed out, cancelled, completed)."""
        token_id = token.id if isinstance(token, Token) else token
        if current_journal() is None:
            await default_client().waitpoints.complete_token(token_id, data)
            return
        body = {"token_id": token_id, "data": data}
        await perform("complete_token", token_id, body, "wait.complete_token()")

    async def retrieve_token(self, token: Token | str) -> Token:
        return await default_client().waitpoints.retrieve_token(token.id if isinstance(token, Token) else token)

    def list_tokens(self, *, status: str | Sequence[str] | None = None, tag: str | None = None) -> AsyncIterator[Token]:
        """Tokens of the environment, newest first: ``async for token in wait.list_tokens(status="WAITING")``."""
        return default_client().waitpoints.list_tokens(status=status, tag=tag)


wait = Wait()
