"""The store's change events: what a committed transaction changed, typed, published once after
commit to this process's listeners and (PostgreSQL) to the other stores on the database."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import pytest
from sqlalchemy import text

from hightide.core.states import RunStatus
from hightide.errors import AlreadyExistsError
from hightide.store import Store
from hightide.store import changes as wire
from hightide.store.changes import Change, ChangeKind
from tests.store.factories import NOW, insert, make_env, new_run, start_run
from tests.support import assert_eventually


class Heard:
    """A listener that keeps every batch it is given."""

    def __init__(self) -> None:
        self.batches: list[tuple[Change, ...]] = []
        self._lock = threading.Lock()

    def __call__(self, changes: Sequence[Change]) -> None:
        with self._lock:
            self.batches.append(tuple(changes))

    @property
    def changes(self) -> list[Change]:
        with self._lock:
            return [c for b in self.batches for c in b]


def test_listeners_hear_typed_changes_of_new_runs(store: Store) -> None:
    env = make_env(store)
    heard, removed = Heard(), Heard()
    store.add_listener(heard)
    store.add_listener(removed)
    store.remove_listener(removed)

    queued, delayed = insert(store, new_run(env), new_run(env, status=RunStatus.DELAYED))

    assert heard.batches == [
        (
            Change(env, queued.id, RunStatus.QUEUED, ChangeKind.CREATED),
            Change(env, delayed.id, RunStatus.DELAYED, ChangeKind.CREATED),
        )
    ], "one batch per transaction, in process and at once after commit"
    assert removed.batches == []


def test_a_failed_transaction_publishes_nothing(store: Store) -> None:
    env = make_env(store)
    heard = Heard()
    store.add_listener(heard)
    first = new_run(env)
    with pytest.raises(AlreadyExistsError):
        store.runs.insert_runs([first, first], NOW)
    second = insert(store, new_run(env))[0]
    # Nothing of the rolled-back transaction rides along with the next one on the same connection.
    assert heard.changes == [Change(env, second.id, RunStatus.QUEUED, ChangeKind.CREATED)]


def test_cancelling_an_executing_run_is_a_cancel_request_other_changes_are_statuses(store: Store) -> None:
    env = make_env(store)
    executing = start_run(store, env)
    queued = insert(store, new_run(env))[0]
    heard = Heard()
    store.add_listener(heard)

    for run in (executing, queued):
        store.runs.update_run(
            run.id,
            expect_status=run.status.value,
            expect_attempt=None,
            values={"status": "CANCELED", "finished_at": NOW},
            now=NOW,
        )

    assert heard.changes == [
        Change(env, executing.id, RunStatus.CANCELED, ChangeKind.CANCEL_REQUESTED),
        Change(env, queued.id, RunStatus.CANCELED, ChangeKind.STATUS),
    ]


def test_versions_and_settings_are_changes_of_the_environment(store: Store) -> None:
    env = make_env(store)
    heard = Heard()
    store.add_listener(heard)
    store.environments.register_version(
        env, "20270116", {"tasks": [{"id": "email", "queue": {"name": "task/email"}}]}, NOW
    )
    store.environments.set_environment_concurrency(env, 7)
    assert heard.changes == [Change(env, kind=ChangeKind.VERSION), Change(env, kind=ChangeKind.ENVIRONMENT)]


def test_a_large_batch_is_summarised_but_keeps_its_cancel_requests(store: Store) -> None:
    env = make_env(store)
    heard = Heard()
    store.add_listener(heard)
    insert(store, *(new_run(env) for _ in range(300)))
    assert heard.batches == [(Change(env, kind=ChangeKind.SEVERAL),)]

    cancel = Change(env, "run_x", RunStatus.CANCELED, ChangeKind.CANCEL_REQUESTED)
    many = [Change(env, f"run_{i}", RunStatus.COMPLETED) for i in range(300)]
    assert wire.batch([*many, cancel]) == (cancel, Change(env, kind=ChangeKind.SEVERAL))


def test_notification_payloads_fit_postgres_and_read_back() -> None:
    changes = [Change("env_1", f"run_{i:030d}", RunStatus.CANCELED, ChangeKind.CANCEL_REQUESTED) for i in range(400)]
    payloads = wire.encode("origin", changes)
    assert len(payloads) > 1
    assert all(len(p.encode()) < 8000 for p in payloads)
    decoded = [wire.decode(p) for p in payloads]
    assert {origin for origin, _ in decoded} == {"origin"}
    assert [c for _, batch in decoded for c in batch] == changes
    with pytest.raises(ValueError, match="not a change notification"):
        wire.decode("env_1")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_another_postgres_store_hears_the_same_changes(
    database_url: str, store: Store, open_stores: Callable[[str], Store]
) -> None:
    """Two servers on one database: what one commits, the other's listeners receive, typed."""
    env = make_env(store)
    other = open_stores(database_url)
    heard_here, heard_there = Heard(), Heard()
    store.add_listener(heard_here)
    other.add_listener(heard_there)
    inserted: list[str] = []

    def triggered_and_heard() -> bool:
        # LISTEN starts in a background thread, and a NOTIFY sent before it listens is lost:
        # trigger again until one gets through.
        inserted.append(insert(other, new_run(env))[0].id)
        return any(c.run_id in inserted for c in heard_here.changes)

    assert_eventually(triggered_and_heard, what="a NOTIFY from the other store")
    here = [c for c in heard_here.changes if c.run_id in inserted]
    assert all(c == Change(env, c.run_id, RunStatus.QUEUED, ChangeKind.CREATED) for c in here)
    # The sender's listeners heard each of its changes once, at commit, not again by NOTIFY.
    assert [c.run_id for c in heard_there.changes] == inserted

    # A NOTIFY on the channel that is not a change event is ignored, not fatal to the listener.
    with other.engine.begin() as conn:
        conn.execute(text("SELECT pg_notify('hightide_changes', 'garbage')"))
    run = insert(other, new_run(env))[0]
    assert_eventually(lambda: any(c.run_id == run.id for c in heard_here.changes), what="the listener to go on")


def test_revoking_a_key_is_a_change_of_its_environment(store: Store) -> None:
    env = make_env(store)
    key_id = store.environments.add_api_key(env, "hash-dev", "ht_dev_abcde", NOW)
    heard = Heard()
    store.add_listener(heard)
    assert store.environments.revoke_api_key(key_id, NOW)
    assert not store.environments.revoke_api_key(key_id, NOW)
    assert heard.changes == [Change(env, kind=ChangeKind.KEY_REVOKED)]
