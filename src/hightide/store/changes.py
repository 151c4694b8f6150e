"""Typed change events: what a committed transaction changed, for long-polls, cancels and live pages.

The store collects the changes of a write transaction and publishes them, once it committed, as one
batch: to the listeners of this process, and (PostgreSQL) with one ``NOTIFY`` to every other server
on the database. Both receive the same ``Change`` values. A change only makes a waiting reader look
sooner; every reader still polls, so a lost notification delays, never breaks, anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hightide.core.states import RunStatus

PAYLOAD_LIMIT = 7900
"""Bytes per NOTIFY payload: PostgreSQL refuses 8000 and more."""
FEW = 40  # changes that always fit in one payload (ids are under 40 characters): no need to measure


class ChangeKind(StrEnum):
    CREATED = "created"
    """A run was triggered (``status``: QUEUED or DELAYED)."""
    STATUS = "status"
    """A run changed status (``status``: the new one)."""
    CANCEL_REQUESTED = "cancel"
    """An executing run was cancelled: the worker holding it must stop it."""
    READY = "ready"
    """Queued runs became claimable without a change of status (a retry's backoff ended)."""
    VERSION = "version"
    """A worker registered a new version: task definitions of the environment changed."""
    ENVIRONMENT = "environment"
    """The environment's settings changed (its concurrency limit)."""
    QUEUE = "queue"
    """A queue was paused or resumed, or its concurrency limit overridden or reset."""
    KEY_REVOKED = "key_revoked"
    """A secret key of the environment was revoked: servers drop the keys they cached for it."""
    METADATA = "metadata"
    """A run's metadata changed (``status``: the run's, unchanged)."""
    TAGS = "tags"
    """Tags were added to a run (``status``: the run's, unchanged)."""
    SEVERAL = "several"
    """Many runs of the environment changed in one transaction (too many to list): read again."""


@dataclass(frozen=True)
class Change:
    """One thing a committed transaction changed. ``run_id`` and ``status`` are set for changes of
    one run, ``None`` for changes of the environment as a whole."""

    environment_id: str
    run_id: str | None = None
    status: RunStatus | None = None
    kind: ChangeKind = ChangeKind.STATUS


def run_change(environment_id: str, run_id: str, status: str, expect_status: str | None = None) -> Change:
    """The change of a run moved from ``expect_status`` to ``status``: a cancel of an executing run
    is ``CANCEL_REQUESTED`` (its worker's heartbeat must hear of it), anything else ``STATUS``."""
    new = RunStatus(status)
    cancelled = new == RunStatus.CANCELED and expect_status == RunStatus.EXECUTING.value
    return Change(environment_id, run_id, new, ChangeKind.CANCEL_REQUESTED if cancelled else ChangeKind.STATUS)


def batch(changes: Iterable[Change]) -> tuple[Change, ...]:
    """The changes of one transaction as published: each once, in order. When the changes of runs
    would not fit in one notification (a worker's report of hundreds of results), they are replaced
    by one ``SEVERAL`` per environment; cancel requests are always kept one by one."""
    unique = tuple(dict.fromkeys(changes))
    if len(unique) <= FEW or len(_encode_one("", unique)) <= PAYLOAD_LIMIT:
        return unique
    kept = [c for c in unique if c.run_id is None or c.kind == ChangeKind.CANCEL_REQUESTED]
    summarised = dict.fromkeys(
        Change(c.environment_id, kind=ChangeKind.SEVERAL) for c in unique if c.run_id is not None
    )
    return tuple(dict.fromkeys([*kept, *summarised]))


# -- the wire format of NOTIFY payloads: {"o": origin, "c": [[env, run, status, kind], ...]} -----


def encode(origin: str, changes: Sequence[Change]) -> list[str]:
    """NOTIFY payloads (each under ``PAYLOAD_LIMIT`` bytes) carrying ``changes``; ``origin`` names
    the sending store, so that it can skip its own notifications (it told its listeners already)."""
    payloads: list[str] = []
    chunk: list[Change] = []
    for change in changes:
        if chunk and len(_encode_one(origin, [*chunk, change])) > PAYLOAD_LIMIT:
            payloads.append(_encode_one(origin, chunk))
            chunk = []
        chunk.append(change)
    if chunk:
        payloads.append(_encode_one(origin, chunk))
    return payloads


def _encode_one(origin: str, changes: Sequence[Change]) -> str:
    rows = [[c.environment_id, c.run_id, c.status.value if c.status else None, c.kind.value] for c in changes]
    return json.dumps({"o": origin, "c": rows}, separators=(",", ":"))


def decode(payload: str) -> tuple[str, tuple[Change, ...]]:
    """The origin and changes of a NOTIFY payload. Raises ``ValueError`` if it is not one."""
    try:
        doc: Any = json.loads(payload)
        changes = tuple(
            Change(str(env), run, RunStatus(status) if status else None, ChangeKind(kind))
            for env, run, status, kind in doc["c"]
        )
        return str(doc["o"]), changes
    except (TypeError, KeyError, ValueError) as exc:
        raise ValueError(f"not a change notification: {payload[:100]!r}") from exc
