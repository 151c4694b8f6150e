"""``store.live``: the reads of live views (both backends), and the changes they rely on: a claim
publishes its runs starting (which wakes no claimer)."""

from __future__ import annotations

from collections.abc import Sequence

from hightide.core.states import RunStatus
from hightide.engine.notify import cancel_key, keys_of
from hightide.store import Store
from hightide.store.changes import Change, ChangeKind
from hightide.store.live import TagQuery
from tests.store.factories import NOW, insert, make_env, new_run, start_run


def test_a_claim_publishes_its_runs_starting(store: Store) -> None:
    env = make_env(store)
    heard: list[Change] = []

    def listen(changes: Sequence[Change]) -> None:
        heard.extend(changes)

    store.add_listener(listen)
    run = start_run(store, env)
    assert heard[-1] == Change(env, run.id, RunStatus.EXECUTING, ChangeKind.STATUS)
    # A run starting takes work and a slot: it wakes no claimer (nor a heartbeat).
    assert keys_of([heard[-1]]) == set()
    assert keys_of([Change(env, run.id, RunStatus.COMPLETED)]) == {env}
    assert keys_of([Change(env, run.id, RunStatus.CANCELED, ChangeKind.CANCEL_REQUESTED)]) == {env, cancel_key(env)}


def test_views_read_runs_of_any_environment_with_their_attempts(store: Store) -> None:
    env, other = make_env(store), make_env(store, "staging")
    started = start_run(store, env)
    queued = insert(store, new_run(other, tags=["a"]))[0]
    views = store.live.views([started.id, queued.id, "run_unknown"])
    assert set(views) == {started.id, queued.id}
    assert [a.number for a in views[started.id].attempts] == [1]
    assert views[queued.id].attempts == () and views[queued.id].waits == ()
    # Known and unchanged since: left out.
    assert set(store.live.views([started.id, queued.id], known={started.id: started.updated_at})) == {queued.id}


def test_views_of_a_tag_among_changed_runs_or_since_a_time(store: Store) -> None:
    env = make_env(store)
    tagged = insert(store, new_run(env, tags=["x", "y"]), new_run(env, tags=["y"]), now=NOW)
    untagged = insert(store, new_run(env), now=NOW)[0]
    later = insert(store, new_run(env, tags=["x"], created_at=NOW + 10), now=NOW + 10)[0]
    among = TagQuery(env, frozenset(["x"]), among=frozenset([tagged[0].id, tagged[1].id, untagged.id]))
    assert set(store.live.views([], [among])) == {tagged[0].id}
    since = TagQuery(env, frozenset(["x"]), updated_since=NOW + 5)
    assert set(store.live.views([], [since])) == {later.id}
    recent = store.live.recent_tagged(env, "x", 10)
    assert [v.run.id for v in recent] == [tagged[0].id, later.id]  # oldest of the newest first
    assert [v.run.id for v in store.live.recent_tagged(env, "x", 1)] == [later.id]
