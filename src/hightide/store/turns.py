"""``store.turns``: the claim's turns of concurrency keys.

In a queue with a concurrency limit, each concurrency key value is a group of its own with its own
copy of the limit (a queue's runs without a key are one more group, counted as ever). Keyed runs
take turns: the n-th ready run of a key whose runs already execute ``busy`` times has turn
``busy + n``, and may start only while that is within the limit. The claim takes runs by turn, then
by rank (queue time minus priority); every run that is not a keyed run of such a queue has turn 1,
as a key with nothing executing. So a key with 10,000 queued runs and a key with one each start one
before either starts a second, and when a slot frees, the least busy key's run takes it.

A queue with a rate limit per key (``store.rates``) takes turns the same way, with or without a
concurrency limit: a key's runs beyond the room in its rate window are not picked, and a key whose
window is full is left out as a key at its limit is.

Two ways to find the turns, both under the claim lock and in its transaction:

- ``turns_in_prefix``: the first ready runs in rank order, a few more than the claim wants (one
  index range, narrow columns). Enough when they hold as many runs of turn 1 as the claim wants (no
  run further back can come first) or when they are every ready run: the common case, as cheap as a
  claim without keys.
- ``keyed_turns``: otherwise (say, one key's thousands of runs fill the prefix and that key is at
  its limit): one statement with a window function over the ready keyed runs of the keys that are
  not at their limit, in ``ix_runs_claim_key`` order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, tuple_

from hightide.core.limits import MAX_INT
from hightide.core.states import RunStatus
from hightide.store import schema as t
from hightide.store.rates import Group, Windows
from hightide.store.seam import Seam

Candidate = tuple[int, float, str, Any]
"""A run the claim may start: (turn, rank_at, id, its row). Taken in that order."""

# The prefix holds this many runs beyond twice the claim's size: room for the runs of busy keys.
_PREFIX_SLACK = 32


@dataclass(frozen=True)
class Groups:
    """The claim's view of its limits: each queue's (limit, paused); the queues whose keys are groups
    of their own (not paused, and a limit above 0 or a rate limit per key); per queue, its runs
    executing outside those groups; per (queue, key) of those queues, its runs executing; the rate
    limits' windows."""

    limits: Mapping[str, tuple[int | None, bool]]
    keyed_queues: Sequence[str]
    executing: Mapping[str, int]
    busy: Mapping[tuple[str, str], int]
    windows: Windows

    def is_keyed(self, queue: str, key: str | None) -> bool:
        return key is not None and queue in self.keyed_queues

    def limit(self, queue: str) -> int | None:
        return self.limits.get(queue, (None, False))[0]

    def within(self, queue: str, turn: int) -> bool:
        """Whether a keyed run's ``turn`` is within its queue's concurrency limit (if it has one)."""
        limit = self.limit(queue)
        return limit is None or turn <= limit

    def full(self) -> list[tuple[str, str]]:
        """The (queue, key) groups at their concurrency limit or with a full rate window."""
        at_limit = [group for group, count in self.busy.items() if not self.within(group[0], count + 1)]
        return sorted({*at_limit, *self.windows.full_keys()})


def _locked_rows(conn: Connection, seam: Seam, picks: Sequence[tuple[int, float, str]]) -> list[Candidate]:
    """The rows of ``picks``, locked, in their order: those still QUEUED (under the claim lock, all)."""
    if not picks:
        return []
    r = t.runs
    stmt = select(r).where(r.c.id.in_([pick[2] for pick in picks]), r.c.status == RunStatus.QUEUED.value)
    rows = {row._mapping["id"]: row for row in conn.execute(seam.claim_select(stmt)).all()}
    return [(turn, rank, run_id, rows[run_id]) for turn, rank, run_id in picks if run_id in rows]


def turns_in_prefix(
    conn: Connection, seam: Seam, ready: Any, groups: Groups, blocked: set[str], left: int
) -> tuple[list[Candidate] | None, bool]:
    """Up to ``left`` runs by turn from the first ready runs in rank order (None when the runs
    beyond them might come first), and whether those were every ready run."""
    r = t.runs
    size = 2 * left + _PREFIX_SLACK
    narrow = ready.with_only_columns(r.c.id, r.c.queue, r.c.concurrency_key, r.c.rank_at)
    if blocked:  # a blocked queue's runs without a key wait; its keys have their own limits
        keyed = and_(r.c.concurrency_key.is_not(None), r.c.queue.in_(groups.keyed_queues))
        narrow = narrow.where(or_(r.c.queue.not_in(sorted(blocked)), keyed))
    rows = conn.execute(narrow.order_by(r.c.rank_at, r.c.id).limit(size)).all()
    groups.windows.load(groups.windows.group(row.queue, row.concurrency_key) for row in rows)
    places: Counter[tuple[str, str]] = Counter()
    counted: dict[str, int] = {}
    rated: Counter[Group] = Counter()  # picks per rate window
    picks: list[tuple[int, float, str]] = []
    for row in rows:
        queue, key = row.queue, row.concurrency_key
        if groups.is_keyed(queue, key):
            places[(queue, key)] += 1
            turn = groups.busy.get((queue, key), 0) + places[(queue, key)]
            if groups.within(queue, turn) and groups.windows.room(queue, key, rated):
                rated[groups.windows.group(queue, key)] += 1
                picks.append((turn, row.rank_at, row.id))
            continue
        if queue in blocked:
            continue
        limit = groups.limit(queue)
        running = counted.get(queue, groups.executing.get(queue, 0))
        if (limit is not None and running >= limit) or not groups.windows.room(queue, key, rated):
            continue
        counted[queue] = running + 1
        rated[groups.windows.group(queue, key)] += 1
        picks.append((1, row.rank_at, row.id))
    everything = len(rows) < size
    if not everything and sum(1 for pick in picks if pick[0] == 1) < left:
        return None, False
    picks.sort()
    return _locked_rows(conn, seam, picks[:left]), everything


def keyed_turns(
    conn: Connection, seam: Seam, environment_id: str, ready: Any, groups: Groups, left: int
) -> tuple[list[Candidate], bool]:
    """The ready keyed runs that may start now, at most ``left``, by turn: one statement whatever
    the number of keys, and whether it saw them all. Keys at their limit (or with a full rate
    window) are left out before the window function counts places; a key's runs beyond the room in
    its rate window are left out after."""
    r, q = t.runs, t.queues
    busy = (
        select(r.c.queue, r.c.concurrency_key, func.count().label("busy"))
        .where(
            r.c.environment_id == environment_id,
            r.c.status == RunStatus.EXECUTING.value,
            r.c.queue.in_(groups.keyed_queues),
            r.c.concurrency_key.is_not(None),
        )
        .group_by(r.c.queue, r.c.concurrency_key)
        .subquery("busy")
    )
    place = func.row_number().over(partition_by=(r.c.queue, r.c.concurrency_key), order_by=(r.c.rank_at, r.c.id))
    keyed = ready.with_only_columns(r.c.id, r.c.queue, r.c.concurrency_key, r.c.rank_at, place.label("n")).where(
        r.c.queue.in_(groups.keyed_queues), r.c.concurrency_key.is_not(None)
    )
    full = groups.full()
    if full:
        keyed = keyed.where(tuple_(r.c.queue, r.c.concurrency_key).not_in(full))
    ranked = keyed.subquery("ranked")
    turn = (func.coalesce(busy.c.busy, 0) + ranked.c.n).label("turn")
    queue_limit = func.coalesce(q.c.concurrency_limit_override, q.c.concurrency_limit, MAX_INT)
    rows = conn.execute(
        select(ranked.c.id, ranked.c.queue, ranked.c.concurrency_key, ranked.c.rank_at, turn)
        .select_from(
            ranked.join(q, and_(q.c.environment_id == environment_id, q.c.name == ranked.c.queue)).outerjoin(
                busy, and_(busy.c.queue == ranked.c.queue, busy.c.concurrency_key == ranked.c.concurrency_key)
            )
        )
        .where(turn <= queue_limit)
        .order_by(turn, ranked.c.rank_at, ranked.c.id)
        .limit(left)
    ).all()
    rated: Counter[Group] = Counter()
    picks: list[tuple[int, float, str]] = []
    groups.windows.load(groups.windows.group(row.queue, row.concurrency_key) for row in rows)
    for row in rows:
        if groups.windows.room(row.queue, row.concurrency_key, rated):
            rated[groups.windows.group(row.queue, row.concurrency_key)] += 1
            picks.append((row.turn, row.rank_at, row.id))
    # The rows themselves, locked apart: FOR UPDATE cannot go with a window function.
    return _locked_rows(conn, seam, picks), len(rows) < left
