"""Public access tokens: short-lived, read-only, signed grants to read named runs and tags.

A browser shows a run's progress with one, without a secret key. A token is
``ht_pub_<claims>.<signature>``: the claims (``{"v": 1, "e": environment, "x": expiry, "r": runs,
"t": tags}``, compact JSON, base64url) signed with HMAC-SHA256 under a key derived from a server
secret kept in the database (``store.environments.secret``, shared by every server) and the
environment's id. Nothing is stored per token: a token cannot be revoked, which is why it is
short-lived (one hour by default, at most a week). A token of one environment cannot read another's
runs: the environment is part of what is signed, and every read is scoped to it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hightide.core.durations import parse_duration
from hightide.core.ids import new_secret
from hightide.core.limits import MAX_ID_LENGTH, MAX_TAG_LENGTH, check_text
from hightide.engine.base import EngineCore
from hightide.errors import AuthenticationError, ValidationError
from hightide.store.records import Environment, Run

PREFIX = "ht_pub_"
DEFAULT_EXPIRY = 3600.0
MAX_EXPIRY = 7 * 86400.0
MAX_NAMES = 50
"""Runs and tags one token may name (a token travels in a header or a URL: it stays under 4 KB)."""
_SECRET_NAME = "public_token_key"
_HELP = "make a new one with POST /api/v1/auth/public-tokens, or use the one a trigger returned"


def is_public_token(secret: str) -> bool:
    return secret.startswith(PREFIX)


@dataclass(frozen=True)
class Grant:
    """What a public token lets its holder read: the runs it names, and the runs carrying a tag it
    names, of one environment, until ``expires_at``."""

    environment_id: str
    runs: frozenset[str]
    tags: frozenset[str]
    expires_at: float

    def may_read_run(self, run: Run) -> bool:
        return run.environment_id == self.environment_id and (run.id in self.runs or not self.tags.isdisjoint(run.tags))

    def may_read_tag(self, tag: str) -> bool:
        return tag in self.tags


@dataclass(frozen=True)
class Reader:
    """Who reads: a secret key (everything of its environment, ``grant`` None) or a public token."""

    environment: Environment
    grant: Grant | None = None

    def may_read_run(self, run: Run) -> bool:
        if run.environment_id != self.environment.id:
            return False
        return self.grant is None or self.grant.may_read_run(run)

    def may_read_tag(self, tag: str) -> bool:
        return self.grant is None or self.grant.may_read_tag(tag)

    @property
    def expires_at(self) -> float | None:
        return None if self.grant is None else self.grant.expires_at


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _names(values: Iterable[str] | None, field: str, max_length: int) -> list[str]:
    out = list(dict.fromkeys(values or ()))
    for i, value in enumerate(out):
        check_text(value, f"{field}[{i}]", max_length)
    return out


class PublicTokens:
    """Issue and verify public access tokens (a few microseconds each once the key is cached)."""

    def __init__(
        self, core: EngineCore, env_ttl: float = 60.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.core = core
        self._secret: bytes | None = None
        self._keys: dict[str, bytes] = {}
        self._envs: dict[str, tuple[Environment, float]] = {}
        self._env_ttl = env_ttl
        self._monotonic = monotonic
        self._lock = threading.Lock()

    # -- issuing -------------------------------------------------------------------------
    def create(
        self,
        env: Environment,
        runs: Iterable[str] | None = None,
        tags: Iterable[str] | None = None,
        expires_in: str | float | None = None,
    ) -> tuple[str, float]:
        """A token reading ``runs`` and the runs tagged ``tags`` of ``env``, and when it expires."""
        run_ids = _names(runs, "read.runs", MAX_ID_LENGTH)
        tag_names = _names(tags, "read.tags", MAX_TAG_LENGTH)
        if not run_ids and not tag_names:
            raise ValidationError(
                'read: name at least one run or tag, e.g. {"read": {"runs": ["run_..."]}}',
                details={"field": "read"},
            )
        if len(run_ids) + len(tag_names) > MAX_NAMES:
            raise ValidationError(
                f"read: a token names at most {MAX_NAMES} runs and tags; make several tokens",
                details={"field": "read", "limit": MAX_NAMES},
            )
        ttl = DEFAULT_EXPIRY if expires_in is None else parse_duration(expires_in, field="expires_in")
        if not 0 < ttl <= MAX_EXPIRY:
            raise ValidationError(
                f"expires_in: expected more than 0 s and at most {MAX_EXPIRY:g} s (7 days)",
                details={"field": "expires_in", "limit": MAX_EXPIRY},
            )
        expires_at = float(int(self.core.clock() + ttl))
        return self._sign(env.id, run_ids, tag_names, int(expires_at)), expires_at

    def for_run(self, env: Environment, run_id: str) -> str:
        """The token a trigger returns: its run, for an hour. No checks (the id is the engine's)."""
        return self._sign(env.id, [run_id], [], int(self.core.clock() + DEFAULT_EXPIRY))

    def _sign(self, environment_id: str, runs: list[str], tags: list[str], expires_at: int) -> str:
        claims: dict[str, object] = {"v": 1, "e": environment_id, "x": expires_at}
        if runs:
            claims["r"] = runs
        if tags:
            claims["t"] = tags
        body = PREFIX + _b64(json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode())
        return body + "." + _b64(self._mac(environment_id, body))

    def _mac(self, environment_id: str, body: str) -> bytes:
        return hmac.new(self._key(environment_id), body.encode(), hashlib.sha256).digest()

    def _key(self, environment_id: str) -> bytes:
        key = self._keys.get(environment_id)
        if key is None:
            if self._secret is None:
                secret = self.core.store.environments.secret(_SECRET_NAME, lambda: new_secret("ptk"), self.core.clock())
                self._secret = secret.encode()
            # One key per environment, so that no environment's key can sign for another.
            key = hmac.new(self._secret, b"public-token:" + environment_id.encode(), hashlib.sha256).digest()
            self._keys[environment_id] = key
        return key

    # -- verifying -----------------------------------------------------------------------
    def verify(self, token: str) -> Reader:
        """The reader a public token stands for; ``AuthenticationError`` if it is forged, malformed
        or expired, or its environment is gone."""
        body, _, signature = token.partition(".")
        if not body.startswith(PREFIX) or not signature:
            raise AuthenticationError(f"malformed public access token: {_HELP}")
        try:
            claims = json.loads(_unb64(body[len(PREFIX) :]))
            mac = _unb64(signature)
            environment_id = claims["e"]
            expires_at = claims["x"]
            runs = claims.get("r", [])
            tags = claims.get("t", [])
            well_formed = (
                claims.get("v") == 1
                and isinstance(environment_id, str)
                and isinstance(expires_at, int)
                and isinstance(runs, list)
                and isinstance(tags, list)
                and all(isinstance(x, str) for x in [*runs, *tags])
            )
        except (ValueError, TypeError, KeyError, binascii.Error, AttributeError):
            well_formed = False
        if not well_formed:
            raise AuthenticationError(f"malformed public access token: {_HELP}")
        if not hmac.compare_digest(mac, self._mac(environment_id, body)):
            raise AuthenticationError(f"invalid public access token (its signature does not match): {_HELP}")
        if expires_at <= self.core.clock():
            raise AuthenticationError(f"this public access token expired: {_HELP}")
        env = self._environment(environment_id)
        return Reader(env, Grant(environment_id, frozenset(runs), frozenset(tags), float(expires_at)))

    def _environment(self, environment_id: str) -> Environment:
        hit = self._envs.get(environment_id)
        if hit is not None and hit[1] > self._monotonic():
            return hit[0]
        env = self.core.store.environments.get_environment_by_id(environment_id)
        if env is None:
            raise AuthenticationError(f"the environment of this public access token no longer exists: {_HELP}")
        with self._lock:
            self._envs[environment_id] = (env, self._monotonic() + self._env_ttl)
        return env


__all__ = ["DEFAULT_EXPIRY", "MAX_EXPIRY", "Grant", "PublicTokens", "Reader", "is_public_token"]
