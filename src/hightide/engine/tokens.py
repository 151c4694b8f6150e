"""Waitpoint tokens: created anywhere, completed through the API or a signed callback URL, or timed
out by the scheduler. A run waits for one with ``wait.for_token`` (see ``journal.py``)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from hightide.core.ids import new_id, new_secret
from hightide.core.limits import MAX_IDEMPOTENCY_KEY_LENGTH, MAX_TAG_LENGTH, MAX_TAGS, check_duration, check_text
from hightide.engine.base import EngineCore
from hightide.engine.options import DEFAULT_IDEMPOTENCY_TTL
from hightide.engine.payloads import check_size
from hightide.errors import AuthenticationError, ConflictError, NotFoundError, ValidationError
from hightide.store.records import Environment, Waitpoint

TOKEN_STATUSES = ("WAITING", "COMPLETED", "TIMED_OUT", "CANCELED")


@dataclass(frozen=True)
class TokenSpec:
    """A token to create. ``timeout`` is seconds from now; ``None`` waits for ever."""

    timeout: float | None = None
    tags: tuple[str, ...] = ()
    idempotency_key: str | None = None
    idempotency_key_ttl: float | None = None


class Tokens:
    """Waitpoint tokens: create, read, complete (with a key or a signed callback URL)."""

    def __init__(self, core: EngineCore) -> None:
        self.core = core
        self.store = core.store
        self._signing_key: bytes | None = None

    def create_token(
        self, env: Environment, spec: TokenSpec, owner_run_id: str | None = None
    ) -> tuple[Waitpoint, bool]:
        """A new token (or the live one with the same idempotency key, and ``True``)."""
        return self.store.waitpoints.create_waitpoint(self.new_token(env, spec, owner_run_id), self.core.clock())

    def new_token(self, env: Environment, spec: TokenSpec, owner_run_id: str | None) -> Waitpoint:
        check_token_spec(spec)
        now = self.core.clock()
        return new_waitpoint(
            env,
            "TOKEN",
            owner_run_id,
            now,
            spec.idempotency_key,
            spec.idempotency_key_ttl,
            timeout_at=None if spec.timeout is None else now + spec.timeout,
            tags=list(dict.fromkeys(spec.tags)),
        )

    def get_token(self, env: Environment, token_id: str) -> Waitpoint:
        token = self.store.waitpoints.get_waitpoint(token_id, env.id)
        if token is None or token.kind != "TOKEN":
            raise NotFoundError(
                f"waitpoint token {token_id!r} not found in environment {env.slug!r}", details={"token": token_id}
            )
        return token

    def list_tokens(
        self,
        env: Environment,
        statuses: tuple[str, ...] = (),
        tag: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Waitpoint], str | None]:
        if not 1 <= limit <= 1000:
            raise ValidationError("limit: expected 1 to 1000", details={"field": "limit"})
        bad = [s for s in statuses if s not in TOKEN_STATUSES]
        if bad:
            raise ValidationError(
                f"status: unknown status(es) {bad}; expected some of {list(TOKEN_STATUSES)}",
                details={"field": "status"},
            )
        return self.store.waitpoints.list_waitpoints(
            env.id, "TOKEN", statuses=statuses, tag=tag, limit=limit, cursor=cursor
        )

    def complete_token(self, env: Environment, token_id: str, output: Any) -> Waitpoint:
        """Complete a WAITING token with ``output``; the runs waiting on it are queued again."""
        token = self.get_token(env, token_id)
        check_size(output, self.core.settings.max_payload_bytes, "data")
        if token.status == "WAITING" and self.store.waitpoints.resolve_waitpoint(
            token.id, "COMPLETED", self.core.clock(), output
        ):
            return self.get_token(env, token_id)
        token = self.get_token(env, token_id)
        reason = {
            "CANCELED": f"it was cancelled with its run {token.owner_run_id}",
            "TIMED_OUT": "it timed out",
            "COMPLETED": "it was already completed",
        }.get(token.status, token.status)
        raise ConflictError(
            f"waitpoint token {token_id} cannot be completed: {reason}; nothing changed",
            details={"token": token_id, "status": token.status},
        )

    def check_token_signature(self, token_id: str, signature: str) -> None:
        """Raise ``AuthenticationError`` unless ``signature`` is the one of ``token_id``'s callback URL
        (the server checks it before it reads the request's body)."""
        if not hmac.compare_digest(signature.encode(), self.token_signature(token_id).encode()):
            raise AuthenticationError("this callback URL is not valid for that token (the signature does not match)")

    def complete_token_signed(self, token_id: str, signature: str, output: Any) -> Waitpoint:
        """The callback URL's completion: the signature stands in for an API key."""
        self.check_token_signature(token_id, signature)
        token = self.store.waitpoints.get_waitpoint(token_id, None)
        if token is None or token.kind != "TOKEN":
            raise NotFoundError(f"waitpoint token {token_id!r} not found", details={"token": token_id})
        env = self.store.environments.get_environment_by_id(token.environment_id)
        assert env is not None
        return self.complete_token(env, token_id, output)

    def open_waitpoints(self, env: Environment, run_id: str) -> list[Waitpoint]:
        """What a WAITING run waits for: child runs, timers and tokens not resolved yet."""
        self.core.get_run(env, run_id)
        return self.store.waitpoints.open_waitpoints(run_id)

    def token_signature(self, token_id: str) -> str:
        """The HMAC in a token's callback URL, keyed with a secret kept in the database."""
        if self._signing_key is None:
            key = self.store.environments.secret("token_signing_key", lambda: new_secret("tsk"), self.core.clock())
            self._signing_key = key.encode()
        return hmac.new(self._signing_key, token_id.encode(), hashlib.sha256).hexdigest()[:40]

    def token_callback_path(self, token_id: str) -> str:
        return f"/api/v1/waitpoints/tokens/{token_id}/callback/{self.token_signature(token_id)}"


def new_waitpoint(
    env: Environment,
    kind: str,
    owner_run_id: str | None,
    now: float,
    idempotency_key: str | None,
    idempotency_key_ttl: float | None,
    **fields: Any,
) -> Waitpoint:
    """A WAITING waitpoint; its idempotency key, if any, lives ``idempotency_key_ttl`` seconds
    (default 30 days, as for runs)."""
    key_ttl = idempotency_key_ttl if idempotency_key_ttl is not None else DEFAULT_IDEMPOTENCY_TTL
    return Waitpoint(
        id=new_id("waitpoint", now),
        environment_id=env.id,
        kind=kind,
        status="WAITING",
        owner_run_id=owner_run_id,
        idempotency_key=idempotency_key,
        idempotency_key_expires_at=now + key_ttl if idempotency_key else None,
        created_at=now,
        **fields,
    )


def check_token_spec(spec: TokenSpec) -> None:
    if spec.timeout is not None and spec.timeout <= 0:
        raise ValidationError("timeout: expected a positive duration, e.g. '10m'", details={"field": "timeout"})
    if spec.timeout is not None:
        check_duration(spec.timeout, "timeout")
    if spec.idempotency_key_ttl is not None:
        check_duration(spec.idempotency_key_ttl, "idempotency_key_ttl")
    if len(spec.tags) > MAX_TAGS or any(not isinstance(x, str) or not x or len(x) > MAX_TAG_LENGTH for x in spec.tags):
        raise ValidationError(
            f"tags: at most {MAX_TAGS} tags of 1 to {MAX_TAG_LENGTH} characters", details={"field": "tags"}
        )
    key = spec.idempotency_key
    if key is not None and (not key or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH):
        raise ValidationError(
            f"idempotency_key: expected a string of 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters",
            details={"field": "idempotency_key"},
        )
    for i, tag in enumerate(spec.tags):
        check_text(tag, f"tags[{i}]", MAX_TAG_LENGTH)
    if key is not None:
        check_text(key, "idempotency_key", MAX_IDEMPOTENCY_KEY_LENGTH)
