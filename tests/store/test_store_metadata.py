"""``store.metadata``: operations applied under the run's row lock, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from hightide.core.limits import MAX_METADATA_BYTES, MAX_TAGS
from hightide.core.metadata import MetadataOperation, OperationType, Target
from hightide.core.states import RunStatus
from hightide.errors import ConflictError, NotFoundError, ValidationError
from hightide.store import Store
from hightide.store.changes import Change, ChangeKind
from hightide.store.metadata import MetadataChange
from hightide.store.records import RunFilter
from tests.store.factories import NOW, finish, insert, make_env, new_run, start_run

SET, DELETE, INC, APPEND, REMOVE, REPLACE = (
    OperationType.SET,
    OperationType.DELETE,
    OperationType.INCREMENT,
    OperationType.APPEND,
    OperationType.REMOVE,
    OperationType.REPLACE,
)


def op(type_: OperationType, key: str | None = None, value: object = None) -> MetadataOperation:
    return MetadataOperation(type_, key, value)


def apply(store: Store, env: str, run_id: str, *ops: MetadataOperation, target: Target = Target.RUN) -> dict:
    return store.metadata.apply_operations(env, [MetadataChange(run_id, tuple(ops), target)], NOW)[run_id]


def test_operations_apply_in_order_and_are_stored(store: Store) -> None:
    env = make_env(store)
    [run] = insert(store, new_run(env, metadata={"keep": True, "gone": 1}))

    doc = apply(
        store,
        env,
        run.id,
        op(SET, "status", "importing"),
        op(INC, "done", 2),
        op(INC, "done", 0.5),
        op(APPEND, "log", "a"),
        op(APPEND, "log", {"b": [1]}),
        op(APPEND, "log", "a"),
        op(REMOVE, "log", "a"),
        op(DELETE, "gone"),
        op(DELETE, "never-there"),
    )

    expected = {"keep": True, "status": "importing", "done": 2.5, "log": [{"b": [1]}]}
    assert doc == expected
    stored = store.runs.get_run(run.id)
    assert stored is not None and stored.metadata == expected
    assert apply(store, env, run.id, op(REPLACE, None, {"fresh": 1})) == {"fresh": 1}


def test_concurrent_increments_from_many_threads_all_count(store: Store) -> None:
    env = make_env(store)
    [parent] = insert(store, new_run(env))
    children = insert(store, *(new_run(env, parent_run_id=parent.id, root_run_id=parent.id) for _ in range(8)))
    errors: list[BaseException] = []

    def child(child_id: str) -> None:
        try:
            for _ in range(25):
                store.metadata.apply_operations(
                    env,
                    [
                        MetadataChange(child_id, (op(INC, "mine", 1),)),
                        MetadataChange(parent.id, (op(INC, "done", 1), op(APPEND, "who", child_id)), Target.PARENT),
                    ],
                    NOW,
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=child, args=(c.id,)) for c in children]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    stored = store.runs.get_run(parent.id)
    assert stored is not None
    assert stored.metadata["done"] == 8 * 25, "not one increment lost"
    assert sorted(stored.metadata["who"]) == sorted(c.id for c in children for _ in range(25))
    for c in children:
        again = store.runs.get_run(c.id)
        assert again is not None and again.metadata == {"mine": 25}


def test_over_the_limit_nothing_applies_and_the_error_names_the_limit_and_target(store: Store) -> None:
    env = make_env(store)
    [parent] = insert(store, new_run(env, metadata={"n": 1}))
    [child] = insert(store, new_run(env, parent_run_id=parent.id, root_run_id=parent.id))
    big = "x" * (MAX_METADATA_BYTES - 10)  # with {"n":1} around it: 6 bytes over

    with pytest.raises(ValidationError) as raised:
        store.metadata.apply_operations(
            env,
            [
                MetadataChange(child.id, (op(SET, "ok", 1),)),
                MetadataChange(parent.id, (op(SET, "big", big),), Target.PARENT),
            ],
            NOW,
        )

    assert raised.value.details["target"] == "parent" and raised.value.details["limit"] == MAX_METADATA_BYTES
    assert "262,144 bytes" in raised.value.message and parent.id in raised.value.message
    for run_id, metadata in ((parent.id, {"n": 1}), (child.id, {})):
        stored = store.runs.get_run(run_id)
        assert stored is not None and stored.metadata == metadata, "all or nothing"
    # At the limit exactly is fine.
    room = MAX_METADATA_BYTES - len('{"big":""}')
    assert len(apply(store, env, child.id, op(SET, "big", "y" * room))["big"]) == room


def test_nul_and_unicode_round_trip(store: Store) -> None:
    env = make_env(store)
    [run] = insert(store, new_run(env))
    value = {"nul": "a\x00b", "emoji": "🌊", "nested": ["\x00", {"k\x00": 1}]}

    apply(store, env, run.id, op(SET, "v", value))

    stored = store.runs.get_run(run.id)
    assert stored is not None and stored.metadata == {"v": value}


def test_missing_and_long_finished_runs_are_refused(store: Store) -> None:
    env, other = make_env(store), make_env(store, "prod")
    [run] = insert(store, new_run(env))
    with pytest.raises(NotFoundError):
        apply(store, other, run.id, op(SET, "a", 1))  # another environment's run is not there

    claimed = start_run(store, env)
    finish(store, claimed, now=NOW - 3000)
    assert apply(store, env, claimed.id, op(SET, "late", 1)) == {"late": 1}, "within the hour after it finished"
    finish_long_ago = start_run(store, env)
    finish(store, finish_long_ago, now=NOW - 3700)
    with pytest.raises(ConflictError) as raised:
        apply(store, env, finish_long_ago.id, op(SET, "late", 1))
    assert raised.value.details == {"run": finish_long_ago.id, "target": "run", "status": "COMPLETED"}


def test_each_changed_run_publishes_a_metadata_change(store: Store) -> None:
    env = make_env(store)
    [parent] = insert(store, new_run(env))
    [child] = insert(store, new_run(env, parent_run_id=parent.id, root_run_id=parent.id))
    heard: list[Sequence[Change]] = []
    store.add_listener(heard.append)

    store.metadata.apply_operations(
        env,
        [MetadataChange(child.id, (op(SET, "a", 1),)), MetadataChange(parent.id, (op(INC, "done", 1),), Target.PARENT)],
        NOW,
    )
    apply(store, env, child.id, op(DELETE, "absent"))  # nothing changes: nothing to tell

    assert [set(b) for b in heard] == [
        {
            Change(env, parent.id, RunStatus.QUEUED, ChangeKind.METADATA),
            Change(env, child.id, RunStatus.QUEUED, ChangeKind.METADATA),
        }
    ]


def test_tags_are_added_once_up_to_the_limit_and_found_by_filter(store: Store) -> None:
    env = make_env(store)
    [run] = insert(store, new_run(env, tags=["a"]))
    heard: list[Sequence[Change]] = []
    store.add_listener(heard.append)

    assert store.metadata.add_tags(env, run.id, ["b", "a", "b"], MAX_TAGS, NOW) == ["a", "b"]
    assert store.metadata.add_tags(env, run.id, ["a"], MAX_TAGS, NOW) == ["a", "b"]  # nothing new: no write
    assert heard == [(Change(env, run.id, RunStatus.QUEUED, ChangeKind.TAGS),)]
    found, _ = store.runs.list_runs(env, RunFilter(tag="b"), 10)
    assert [r.id for r in found] == [run.id]

    with pytest.raises(ValidationError) as raised:
        store.metadata.add_tags(env, run.id, [f"t{i}" for i in range(9)], MAX_TAGS, NOW)
    assert raised.value.details["limit"] == MAX_TAGS and "over the limit of 10 tags" in raised.value.message
    stored = store.runs.get_run(run.id)
    assert stored is not None and stored.tags == ["a", "b"], "none added past the limit"
    assert store.metadata.add_tags(env, "run_missing", ["x"], MAX_TAGS, NOW) is None


def test_concurrent_tag_adds_keep_the_limit(store: Store) -> None:
    env = make_env(store)
    [run] = insert(store, new_run(env))
    outcomes: list[str] = []

    def add(i: int) -> None:
        try:
            store.metadata.add_tags(env, run.id, [f"a{i}", f"b{i}"], MAX_TAGS, NOW)
            outcomes.append("added")
        except ValidationError:
            outcomes.append("refused")

    threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    stored = store.runs.get_run(run.id)
    assert stored is not None and len(stored.tags) == MAX_TAGS
    assert outcomes.count("added") == 5 and outcomes.count("refused") == 3
