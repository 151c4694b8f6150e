"""Projects, environments and their secret keys. Keys are stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence

from hightide.core.ids import new_secret
from hightide.errors import AuthenticationError, NotFoundError
from hightide.store import Store
from hightide.store.changes import Change, ChangeKind
from hightide.store.records import ApiKey, Environment

ENVIRONMENTS = {"dev": "ht_dev", "staging": "ht_stg", "prod": "ht_prod", "preview": "ht_prev"}
DEFAULT_PROJECT = "default"
DEFAULT_ENV_CONCURRENCY = 100
AUTH_HEADER_HELP = "send `Authorization: Bearer <secret key>` (an environment key such as ht_dev_...)"


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def bootstrap(store: Store, now: float, concurrency_limit: int | None = None) -> str:
    """Create the ``default`` project with dev, staging and prod environments, if missing. A given
    ``concurrency_limit`` (runs executing at once per environment) is applied to all three."""
    project_id = store.environments.ensure_project(DEFAULT_PROJECT, now)  # servers starting together: safe
    for slug in ("dev", "staging", "prod"):
        limit = concurrency_limit or DEFAULT_ENV_CONCURRENCY
        env_id = store.environments.ensure_environment(project_id, slug, slug, limit, now)
        if concurrency_limit is not None:
            store.environments.set_environment_concurrency(env_id, concurrency_limit)
    return project_id


def find_environment(store: Store, env_slug: str, project_slug: str = DEFAULT_PROJECT) -> Environment:
    env = store.environments.get_environment(project_slug, env_slug)
    if env is None:
        raise NotFoundError(f"environment {env_slug!r} of project {project_slug!r} does not exist")
    return env


def create_key(store: Store, env: Environment, now: float) -> str:
    """Make a new secret key for ``env`` and return it; only its hash is kept."""
    prefix = ENVIRONMENTS.get(env.kind, "ht_prev")
    secret = new_secret(prefix)
    store.environments.add_api_key(env.id, hash_key(secret), secret[: len(prefix) + 5], now, last4=secret[-4:])
    return secret


def revoke_key(store: Store, env: Environment, key_id: str, now: float) -> ApiKey:
    """Revoke a key of ``env``. The store publishes ``KEY_REVOKED``, so every server that hears it
    (see ``KeyAuthenticator``) refuses the key at once. ``NotFoundError`` if ``env`` has no such
    live key (another environment's key is not found here either)."""
    key = next((k for k in store.environments.list_api_keys(env.id) if k.id == key_id), None)
    if key is None or key.revoked or not store.environments.revoke_api_key(key.id, now):
        raise NotFoundError(f"environment {env.slug!r} has no live key {key_id!r}: it may be revoked already")
    return ApiKey(key.id, key.environment_id, key.prefix, key.created_at, now, key.last4)


class KeyAuthenticator:
    """Resolves a secret key to its environment, caching hits briefly (keys are checked on every
    request). A revoked key stops working on every server within ``ttl`` seconds, whatever the
    database; at once where the revocation is heard (a ``KEY_REVOKED`` change: from this store, or
    from any server on a PostgreSQL database), as the keys cached for that environment are dropped."""

    def __init__(self, store: Store, ttl: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[Environment, float]] = {}
        self._lock = threading.Lock()  # the store's listener drops entries from another thread
        store.add_listener(self._forget_revoked)

    def _forget_revoked(self, changes: Sequence[Change]) -> None:
        revoked = {c.environment_id for c in changes if c.kind == ChangeKind.KEY_REVOKED}
        if revoked:
            with self._lock:
                for digest in [d for d, (env, _) in self._cache.items() if env.id in revoked]:
                    del self._cache[digest]

    def cached(self, secret: str) -> Environment | None:
        """The environment of ``secret`` if it was checked recently; no database access."""
        hit = self._cache.get(hash_key(secret))
        return hit[0] if hit and hit[1] > self.clock() else None

    def authenticate(self, secret: str | None) -> Environment:
        if not secret:
            raise AuthenticationError(f"missing secret key: {AUTH_HEADER_HELP}")
        digest = hash_key(secret)
        hit = self._cache.get(digest)
        if hit and hit[1] > self.clock():
            return hit[0]
        env = self.store.environments.environment_for_key(digest)
        if env is None:
            raise AuthenticationError(f"invalid secret key {secret[:10]}...: {AUTH_HEADER_HELP}")
        with self._lock:
            self._cache[digest] = (env, self.clock() + self.ttl)
        return env
