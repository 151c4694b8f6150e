"""``store.rates``: the claim's rate-limit windows (SPEC §6, ``core/ratelimits.py``).

A rate-limited queue starts at most ``limit`` runs in any window of ``period`` seconds: a sliding
window over the starts themselves, kept in ``queue_starts`` so that it holds across servers (claims
of one environment take turns under the claim lock). Each start of a run of such a queue (a first
attempt, a retry, a resume after a wait) adds a row; claims count the rows inside the window, and
delete those past it at most once a second.

With ``per="concurrency_key"`` each key value has a window of its own, and the queue's runs without
a key share one more. A group whose window is full is left out of the claim (its runs stay QUEUED);
the queue then notes in ``rate_free_at`` when its first full window frees, so that the scheduler
wakes the claimers at that time (``ClaimOps.next_due_time``, ``announce_ready``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, case, delete, func, insert, or_, select, tuple_, update

from hightide.core.ratelimits import RateLimit
from hightide.store import schema as t
from hightide.store.queues import rate_limit_of

Group = tuple[str, str | None]
"""A window: (queue, concurrency key), the key ``None`` for a queue-wide window."""

PRUNE_EVERY = 1.0
"""Seconds between deletes of the starts that left their windows (per process and environment):
counts read only the starts inside a window, so the rows past it can wait."""


@dataclass
class Windows:
    """The claim's view of the rate limits of one environment's queues, kept up to date as it
    takes runs. Queue-wide windows (and each per-key queue's window of runs without a key) are
    counted when the claim starts; a per-key queue's keys only when a claim looks at their runs
    (``load``), so that a claim reads the starts of the keys it may take, not of every key."""

    conn: Connection
    environment_id: str
    now: float
    limits: Mapping[str, RateLimit]
    used: Counter[Group] = field(default_factory=Counter)  # starts in each window
    oldest: dict[Group, float] = field(default_factory=dict)  # each window's oldest start
    free_at: Mapping[str, float | None] = field(default_factory=dict)  # as the queues' rows have it
    loaded: set[Group] = field(default_factory=set)  # the windows counted

    def group(self, queue: str, key: str | None) -> Group:
        rate = self.limits.get(queue)
        return (queue, key if rate is not None and rate.per_key else None)

    def left(self, queue: str, key: str | None) -> int | None:
        """Starts the window of a run of ``queue`` with ``key`` allows now (None: no rate limit)."""
        rate = self.limits.get(queue)
        if rate is None:
            return None
        group = self.group(queue, key)
        if group not in self.loaded:
            self.load([group])
        return rate.limit - self.used[group]

    def per_key(self, queue: str) -> bool:
        rate = self.limits.get(queue)
        return rate is not None and rate.per_key

    def room(self, queue: str, key: str | None, picked: Counter[Group]) -> bool:
        """Whether the window of a run of ``queue`` with ``key`` has room for one more start beyond
        the ``picked`` ones (counted by ``group``)."""
        left = self.left(queue, key)
        return left is None or picked[self.group(queue, key)] < left

    def full_queues(self) -> set[str]:
        """Queues whose one window is full: none of their runs may start."""
        return {q for q, rate in self.limits.items() if not rate.per_key and (self.left(q, None) or 0) <= 0}

    def full_keys(self) -> list[tuple[str, str]]:
        """The (queue, key) windows of per-key queues that are full: one grouped read of their
        starts (``HAVING``), for the claim's statement over every key's runs."""
        per_key = {q: rate for q, rate in self.limits.items() if rate.per_key}
        if per_key:
            s = t.queue_starts
            rows = self.conn.execute(
                select(s.c.queue, s.c.concurrency_key)
                .where(
                    s.c.environment_id == self.environment_id, self._inside(per_key), s.c.concurrency_key.is_not(None)
                )
                .group_by(s.c.queue, s.c.concurrency_key)
                .having(func.count() >= case(*((s.c.queue == q, r.limit) for q, r in per_key.items())))
            ).all()
            self.load([(row.queue, row.concurrency_key) for row in rows])
        return [
            (q, k)
            for (q, k) in sorted(self.loaded, key=lambda g: (g[0], g[1] or ""))
            if k is not None and self.per_key(q) and self.used[(q, k)] >= self.limits[q].limit
        ]

    def load(self, groups: Iterable[Group]) -> None:
        """Count the windows of ``groups`` not counted yet: one grouped read."""
        wanted = sorted(
            {g for g in groups if g[0] in self.limits and g not in self.loaded}, key=lambda g: (g[0], g[1] or "")
        )
        if not wanted:
            return
        s = t.queue_starts
        keyed = [g for g in wanted if g[1] is not None]
        queue_wide = {g[0] for g in wanted if g[1] is None and not self.per_key(g[0])}
        unkeyed = {g[0] for g in wanted if g[1] is None and self.per_key(g[0])}
        which: list[Any] = []
        if keyed:
            which.append(tuple_(s.c.queue, s.c.concurrency_key).in_(keyed))
        if queue_wide:
            which.append(s.c.queue.in_(sorted(queue_wide)))
        if unkeyed:
            which.append(s.c.queue.in_(sorted(unkeyed)) & s.c.concurrency_key.is_(None))
        rates = {g[0]: self.limits[g[0]] for g in wanted}
        rows = self.conn.execute(
            select(s.c.queue, s.c.concurrency_key, func.count(), func.min(s.c.started_at))
            .where(s.c.environment_id == self.environment_id, or_(*which), self._inside(rates))
            .group_by(s.c.queue, s.c.concurrency_key)
        ).all()
        self.loaded.update(wanted)
        for queue, key, count, oldest in rows:
            group = self.group(queue, key)  # a queue no longer per key: its keys' starts count together
            self.used[group] += count
            self.oldest[group] = min(oldest, self.oldest.get(group, oldest))

    def _inside(self, rates: Mapping[str, RateLimit]) -> Any:
        """The starts of ``rates``' queues that are inside their windows now."""
        s = t.queue_starts
        return or_(*((s.c.queue == q) & (s.c.started_at > self.now - r.period) for q, r in rates.items()))

    def take(self, queue: str, key: str | None, now: float) -> None:
        group = self.group(queue, key)
        if queue in self.limits:
            self.left(queue, key)  # counted before it changes
            self.used[group] += 1
            self.oldest.setdefault(group, now)


def read_windows(conn: Connection, environment_id: str, queue_rows: Sequence[Any], now: float, prune: bool) -> Windows:
    """The rate limits of the environment's queues (``queue_rows``, its queues' rows), with the
    queue-wide windows counted (one grouped read); ``prune``: first delete the starts that left
    their windows (one DELETE)."""
    rates = {row.name: rate for row in queue_rows if (rate := rate_limit_of(row)) is not None}
    free_at = {row.name: row.rate_free_at for row in queue_rows if row.name in rates}
    windows = Windows(conn, environment_id, now, rates, free_at=free_at)
    if not rates:
        return windows
    if prune:
        s = t.queue_starts
        gone = [(s.c.queue == name) & (s.c.started_at <= now - rate.period) for name, rate in rates.items()]
        conn.execute(delete(s).where(s.c.environment_id == environment_id, or_(*gone)))
    windows.load((name, None) for name, rate in rates.items() if not rate.per_key)
    return windows


def record_starts(
    conn: Connection, environment_id: str, windows: Windows, started: Iterable[tuple[str, str | None]], now: float
) -> None:
    """Add a start for each run of a rate-limited queue among ``started`` (its (queue, key)), and
    note, per queue, when its first full window frees (or that none is full)."""
    rows = [
        {"environment_id": environment_id, "queue": g[0], "concurrency_key": g[1], "started_at": now}
        for g in (windows.group(queue, key) for queue, key in started)
        if g[0] in windows.limits
    ]
    if rows:
        conn.execute(insert(t.queue_starts), rows)
    _note_free_at(conn, environment_id, windows)


def _note_free_at(conn: Connection, environment_id: str, windows: Windows) -> None:
    frees: dict[str, float | None] = dict.fromkeys(windows.limits)
    for group, count in windows.used.items():
        queue = group[0]
        rate = windows.limits.get(queue)
        if rate is None or count < rate.limit:
            continue
        at = windows.oldest[group] + rate.period
        current = frees[queue]
        frees[queue] = at if current is None else min(current, at)
    q = t.queues
    for queue, free in frees.items():
        stored = windows.free_at.get(queue)
        if windows.per_key(queue) and stored is not None and stored > windows.now:
            # A key this claim did not look at may be the one that frees then: keep the earlier time.
            free = stored if free is None else min(free, stored)
        if stored != free:
            conn.execute(
                update(q).where(q.c.environment_id == environment_id, q.c.name == queue).values(rate_free_at=free)
            )
