"""The realtime hub: one per server, it turns the store's change events into the latest state of
the runs each subscriber watches (a run, the runs of a tag, or every run of an environment).

Changes arrive in batches from the store's listener, from any thread (this server's writes and, on
PostgreSQL, every other server's, through ``NOTIFY``). The hub's loop takes everything that arrived
since its last read, reads the changed runs that someone watches with one ``store.live.views`` call
(the same statements for one subscriber or a thousand), and offers each run's new state to the
subscriptions watching it. A batch too large to list (``SEVERAL``) re-reads what the environment's
subscribers watch; so does a poll every ``poll_interval`` seconds, so that a lost notification
delays a subscriber, never leaves it behind. Whatever the kind of a change (status, metadata, tags),
a change of a run is a reason to read it again.

A subscriber to a whole environment (a live list) is offered every run of it that a change names.
After a batch too large to list, and at each poll, it is offered the runs created since the last
re-read (the ``(environment, created_at)`` index of the Runs list) and those it follows
(``follow``: the rows a page shows): never a read of every run of the environment.

A subscription holds the latest state of each run it was offered and not yet taken: a slow reader
skips intermediate states, never the latest one, and holds at most one state per run. An
environment-wide one holds at most ``MAX_PENDING`` runs: past that (a stalled connection while
many runs change) it drops what it holds and says so once (``overflowed``: a live list then asks
its reader to reload).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from hightide.engine.base import EngineCore
from hightide.store.changes import Change, ChangeKind
from hightide.store.live import CreatedQuery, RunView, TagQuery

log = logging.getLogger("hightide.realtime")

RESUME_MARGIN = 2.0
"""Seconds: a re-read by time looks this much further back than its cursor, for transactions that
committed after the time they wrote (and for clocks of servers that differ by less)."""
_MEMORY = 10_000  # runs whose last offered time a subscription remembers (to drop stale reads)
MAX_PENDING = 1_000
"""Runs whose states an environment-wide subscription holds for its reader; past it, it overflows."""

Render = Callable[[RunView, str], str]
"""How a run's state is served (the server's JSON for a base URL): called once per state and base."""


@dataclass
class Update:
    """The state of one run as read at ``at`` (the hub's clock), rendered at most once per base URL."""

    view: RunView
    at: float
    _encoded: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)

    @property
    def run_id(self) -> str:
        return self.view.run.id

    def encoded(self, render: Render, base: str) -> tuple[str, str]:
        """The state rendered for ``base`` and its fingerprint (what identifies this state); the
        subscribers of one run share it (``render`` is the server's one way to serve a run)."""
        hit = self._encoded.get(base)
        if hit is None:
            text = render(self.view, base)
            hit = (text, hashlib.blake2b(text.encode(), digest_size=10).hexdigest())
            self._encoded[base] = hit
        return hit


class Subscription:
    """What one subscriber watches (``run_id`` or ``tag`` of ``environment_id``, or neither: every
    run of the environment) and the latest state of each run offered to it and not yet taken, in
    the order they changed."""

    def __init__(
        self, environment_id: str, run_id: str | None = None, tag: str | None = None, max_pending: int = MAX_PENDING
    ) -> None:
        self.environment_id = environment_id
        self.run_id = run_id
        self.tag = tag
        self.closed = False
        self.max_pending: int | None = max_pending if run_id is None and tag is None else None
        """How many runs' states it holds at most (environment-wide only: a run's or a tag's are bounded)."""
        self._overflowed = False
        self.follows: set[str] = set()
        """Runs an environment-wide subscriber re-reads after a batch too large to list (``RealtimeHub.follow``)."""
        self._pending: OrderedDict[str, Update] = OrderedDict()
        self._latest: OrderedDict[str, float] = OrderedDict()  # run id -> updated_at of the newest offered
        self._ready = asyncio.Event()

    def offer(self, update: Update) -> None:
        """Keep ``update`` unless a newer state of its run was offered already (reads that raced)."""
        run = update.view.run
        if run.environment_id != self.environment_id or self._latest.get(run.id, float("-inf")) > run.updated_at:
            return
        self._latest[run.id] = run.updated_at
        self._latest.move_to_end(run.id)
        if len(self._latest) > _MEMORY:
            self._latest.popitem(last=False)
        self._pending.pop(run.id, None)
        if self.max_pending is not None and len(self._pending) >= self.max_pending:
            # Too many runs changed for a reader this slow: drop them all, it reloads instead.
            self._pending.clear()
            self._overflowed = True
            self._ready.set()
            return
        self._pending[run.id] = update
        self._ready.set()

    def overflowed(self) -> bool:
        """Whether states were dropped (more than ``max_pending`` runs waiting) since last asked."""
        overflowed, self._overflowed = self._overflowed, False
        return overflowed

    async def take(self, timeout: float) -> list[Update]:
        """The states waiting (oldest change first), waiting up to ``timeout`` seconds for one;
        empty on timeout, or when the subscription is closed and nothing is left."""
        if not self._pending and not self.closed:
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return []
        self._ready.clear()
        updates = list(self._pending.values())
        self._pending.clear()
        return updates

    def close(self) -> None:
        self.closed = True
        self._ready.set()


class RealtimeHub:
    """One per server: subscriptions by run and by tag, fed from the store's changes."""

    def __init__(
        self, core: EngineCore, poll_interval: float = 2.0, coalesce: float = 0.05, reread_interval: float = 0.5
    ) -> None:
        self.core = core
        self.poll_interval = poll_interval
        self.coalesce = coalesce
        self.reread_interval = reread_interval
        self.closed = False
        self.reads = 0
        """Batches read so far (what tests and benchmarks count)."""
        self._by_run: dict[str, set[Subscription]] = defaultdict(set)
        self._by_tag: dict[tuple[str, str], set[Subscription]] = defaultdict(set)
        self._by_env: dict[str, set[Subscription]] = defaultdict(set)  # every run of the environment
        self._envs: dict[str, int] = defaultdict(int)  # environment -> subscriptions
        self._changed: dict[str, set[str]] = defaultdict(set)  # environment -> runs changed since the read
        self._several: set[str] = set()  # environments to re-read whole
        self._reread_from: dict[str, float] = {}
        self._offered: OrderedDict[str, tuple[float, object, int, object]] = OrderedDict()  # run -> state offered
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Listen to the store's changes and read on ``loop`` (from a coroutine on it, or before
        it runs)."""
        self._loop = loop
        self._wake = asyncio.Event()
        self.closed = False
        self.core.store.add_listener(self.changed)
        self._task = loop.create_task(self.run(), name="hightide-realtime")

    def close(self) -> None:
        """End every subscription (server shutdown: streams end, connections close) and stop."""
        self.closed = True
        for subs in [*self._by_run.values(), *self._by_tag.values(), *self._by_env.values()]:
            for sub in subs:
                sub.close()
        if self._wake is not None:
            self._wake.set()

    def detach(self) -> None:
        self.close()
        self.core.store.remove_listener(self.changed)
        if self._task is not None:
            self._task.cancel()
            self._task = None

    # -- subscriptions -----------------------------------------------------------------------
    def subscribe(self, environment_id: str, *, run_id: str | None = None, tag: str | None = None) -> Subscription:
        """Watch one run, or the runs of one tag, of ``environment_id``; with neither, every run of
        it (a live list: it filters what it is offered). Subscribe before reading the first state:
        a change between the two is then not missed."""
        sub = Subscription(environment_id, run_id, tag)
        if self.closed:
            sub.close()
            return sub
        if run_id is not None:
            self._by_run[run_id].add(sub)
        if tag is not None:
            self._by_tag[(environment_id, tag)].add(sub)
        if run_id is None and tag is None:
            self._by_env[environment_id].add(sub)
        if not self._envs.get(environment_id) or environment_id not in self._reread_from:
            # Re-reads by time start from now: what was created before, the subscriber reads itself.
            self._reread_from[environment_id] = self.core.clock()
        self._envs[environment_id] += 1
        return sub

    def follow(self, sub: Subscription, run_ids: Iterable[str]) -> None:
        """Have the environment-wide ``sub`` re-read ``run_ids`` too after a batch too large to list
        (the rows its page shows; runs created since are re-read anyway). A change that names one
        of its environment's runs reaches it whether it follows the run or not."""
        if sub.run_id is None and sub.tag is None:
            sub.follows.update(run_ids)

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close()
        found = False
        if sub.run_id is not None and sub in self._by_run.get(sub.run_id, ()):
            found = True
            self._by_run[sub.run_id].discard(sub)
            if not self._by_run[sub.run_id]:
                del self._by_run[sub.run_id]
        key = (sub.environment_id, sub.tag or "")
        if sub.tag is not None and sub in self._by_tag.get(key, ()):
            found = True
            self._by_tag[key].discard(sub)
            if not self._by_tag[key]:
                del self._by_tag[key]
        if sub.run_id is None and sub.tag is None and sub in self._by_env.get(sub.environment_id, ()):
            found = True
            self._by_env[sub.environment_id].discard(sub)
            if not self._by_env[sub.environment_id]:
                del self._by_env[sub.environment_id]
        if found:
            self._envs[sub.environment_id] -= 1
            if self._envs[sub.environment_id] <= 0:
                del self._envs[sub.environment_id]

    @property
    def subscriptions(self) -> int:
        return sum(self._envs.values())

    # -- reading first states ----------------------------------------------------------------
    async def current(self, run_id: str) -> Update | None:
        """The state of ``run_id`` now (a stream's first event), or None if there is no such run."""
        at = self.core.clock()
        views = await asyncio.to_thread(self.core.store.live.views, [run_id])
        view = views.get(run_id)
        return None if view is None else Update(view, at)

    async def recent(self, environment_id: str, tag: str, limit: int) -> list[Update]:
        """The ``limit`` newest runs of ``tag``, oldest first (a tag stream's first events)."""
        at = self.core.clock()
        views = await asyncio.to_thread(self.core.store.live.recent_tagged, environment_id, tag, limit)
        return [Update(v, at) for v in views]

    async def changed_since(self, environment_id: str, tag: str, since: float) -> list[Update]:
        """The runs of ``tag`` changed since ``since`` (less ``RESUME_MARGIN``): a resumed tag stream."""
        at = self.core.clock()
        query = TagQuery(environment_id, frozenset([tag]), updated_since=since - RESUME_MARGIN)
        views = await asyncio.to_thread(self.core.store.live.views, [], [query])
        return sorted((Update(v, at) for v in views.values()), key=lambda u: u.view.run.updated_at)

    # -- changes -----------------------------------------------------------------------------
    def changed(self, changes: Sequence[Change]) -> None:
        """Thread-safe (a store listener): note what ``changes`` concern; the loop reads them."""
        loop = self._loop
        if loop is None or self.closed or not self._envs:  # nobody subscribed: nothing to do
            return
        try:
            loop.call_soon_threadsafe(self._heard, tuple(changes))
        except RuntimeError:  # the loop is closed: nobody is subscribed any more
            pass

    def _heard(self, changes: tuple[Change, ...]) -> None:
        noted = False
        for change in changes:
            if change.environment_id not in self._envs:
                continue  # nobody watches this environment: nothing to read
            if change.kind == ChangeKind.SEVERAL:
                self._several.add(change.environment_id)
                noted = True
            elif change.run_id is not None:
                self._changed[change.environment_id].add(change.run_id)
                noted = True
        if noted and self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        """Read and fan out, one read at a time, until closed. Changes that arrive while a read is
        under way, or within ``coalesce`` seconds of the last one, are read together next."""
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        last_poll = next_reread = loop.time()
        while not self.closed:
            try:
                await asyncio.wait_for(self._wake.wait(), max(0.0, last_poll + self.poll_interval - loop.time()))
            except TimeoutError:
                pass
            if self.closed:
                return
            await asyncio.sleep(self.coalesce)  # a drain's changes come in bursts: read them as one
            self._wake.clear()
            changed, several = self._changed, self._several
            self._changed, self._several = defaultdict(set), set()
            if loop.time() - last_poll >= self.poll_interval:  # what a lost notification would miss
                several |= set(self._envs)
                last_poll = loop.time()
            if several and loop.time() < next_reread:
                # Re-reading everything watched is the costly read: at most one per ``reread_interval``
                # (a drain's large reports are SEVERAL after SEVERAL). Listed changes are read now.
                self._several |= several
                several = set()
                loop.call_at(next_reread, self._wake.set)
            elif several:
                next_reread = loop.time() + self.reread_interval
            try:
                await self._read_and_offer(changed, several)
            except Exception:  # the database is unreachable, say: read it all again next time
                log.warning("realtime: reading changed runs failed; retrying", exc_info=True)
                self._several |= several | set(changed)
                await asyncio.sleep(1.0)

    async def _read_and_offer(self, changed: dict[str, set[str]], several: set[str]) -> None:
        ids, queries, created = self._plan(changed, several)
        if not ids and not queries and not created:
            return
        listed = {run_id for runs in changed.values() for run_id in runs}
        # Runs re-read only because a batch was too large to list: skip those unchanged since offered.
        known = {i: self._offered[i][0] for i in ids - listed if i in self._offered}
        at = self.core.clock()
        views = await asyncio.to_thread(self.core.store.live.views, ids, queries, known, created)
        self.reads += 1
        for env in several:
            self._reread_from[env] = at
        for view in views.values():
            run = view.run
            state = (run.updated_at, run.status, len(view.attempts), tuple(w.id for w in view.waits))
            if run.id not in listed and self._offered.get(run.id) == state:
                continue  # re-read (SEVERAL, a poll) and unchanged: nothing to say (a named change always is)
            self._offered[run.id] = state
            self._offered.move_to_end(run.id)
            if len(self._offered) > _MEMORY * 5:
                self._offered.popitem(last=False)
            self.offer(Update(view, at))

    def _plan(
        self, changed: dict[str, set[str]], several: set[str]
    ) -> tuple[set[str], list[TagQuery], list[CreatedQuery]]:
        """The runs to read by id, the tag queries and the queries of new runs, for what changed."""
        tags_of: dict[str, set[str]] = defaultdict(set)
        for env, tag in self._by_tag:
            tags_of[env].add(tag)
        ids = {
            run_id
            for env, runs in changed.items()
            for run_id in runs
            if run_id in self._by_run or env in self._by_env  # an environment's subscriber: all of them
        }
        queries: list[TagQuery] = []
        created: list[CreatedQuery] = []
        now = self.core.clock()
        for env in several:
            ids |= {run_id for run_id, subs in self._by_run.items() if any(s.environment_id == env for s in subs)}
            since = self._reread_from.get(env, now) - RESUME_MARGIN
            if tags_of.get(env):
                queries.append(TagQuery(env, frozenset(tags_of[env]), updated_since=since))
            if self._by_env.get(env):
                created.append(CreatedQuery(env, since))
                for sub in self._by_env[env]:
                    ids |= sub.follows
        for env, runs in changed.items():
            if env not in several and tags_of.get(env):
                queries.append(TagQuery(env, frozenset(tags_of[env]), among=frozenset(runs)))
        return ids, queries, created

    def offer(self, update: Update) -> None:
        """Hand ``update`` to every subscription watching its run: by id, by one of its tags, or by
        its environment."""
        run = update.view.run
        subs: set[Subscription] = set(self._by_run.get(run.id, ())) | self._by_env.get(run.environment_id, set())
        for tag in run.tags or ():
            subs |= self._by_tag.get((run.environment_id, tag), set())
        for sub in subs:
            sub.offer(update)


__all__ = ["MAX_PENDING", "RESUME_MARGIN", "RealtimeHub", "Render", "Subscription", "Update"]
