"""The store contract, bulk actions: one server at a time works on an action (its lease), each
page's results add up, and an abort stands even when a page finishes after it."""

from __future__ import annotations

from hightide.store import Store
from hightide.store.records import BulkAction, RunFilter
from tests.store.factories import NOW, insert, make_env, new_run


def _action(env: str, total: int = 3, **fields: object) -> BulkAction:
    return BulkAction(
        id=f"bulk_{total}_{len(fields)}",
        environment_id=env,
        action="cancel",
        selection={"ids": ["a", "b", "c"]},
        status="RUNNING",
        total=total,
        created_at=NOW,
        updated_at=NOW,
    )


def test_one_server_at_a_time_holds_an_action_and_its_pages_add_up(store: Store) -> None:
    env = make_env(store)
    made = store.bulk.create(_action(env))
    taken = store.bulk.take(made.id, NOW, 60)
    assert taken is not None and store.bulk.take(made.id, NOW + 1, 60) is None  # leased
    after = store.bulk.advance(
        taken, cursor="2", succeeded=1, skipped=0, failures=[("b", "boom")], done=False, now=NOW + 2
    )
    assert (after.processed, after.succeeded, after.failed, after.failures, after.cursor) == (
        2,
        1,
        1,
        [["b", "boom"]],
        "2",
    )
    again = store.bulk.take(made.id, NOW + 3, 60)  # the lease went with the page
    assert again is not None
    last = store.bulk.advance(again, cursor="3", succeeded=0, skipped=1, failures=[], done=True, now=NOW + 4)
    assert (last.status, last.processed, last.skipped, last.finished_at) == ("COMPLETED", 3, 1, NOW + 4)
    assert store.bulk.running() == [] and store.bulk.take(made.id, NOW + 5, 60) is None
    assert [a.id for a in store.bulk.list_actions(env, 10)[0]] == [made.id]


def test_an_abort_stands_when_the_page_in_hand_finishes_after_it(store: Store) -> None:
    env = make_env(store)
    made = store.bulk.create(_action(env))
    taken = store.bulk.take(made.id, NOW, 60)
    assert taken is not None
    aborted = store.bulk.abort(made.id, env, NOW + 1)
    assert aborted is not None and aborted.status == "ABORTED"
    last = store.bulk.advance(taken, cursor="3", succeeded=3, skipped=0, failures=[], done=True, now=NOW + 2)
    assert (last.status, last.processed) == ("ABORTED", 3)
    assert store.bulk.abort(made.id, "another-env", NOW) is None


def test_a_filter_counts_the_runs_it_selects(store: Store) -> None:
    env = make_env(store)
    insert(store, *(new_run(env, tags=["x"]) for _ in range(3)), new_run(env, "resize"))
    assert store.runs.count_runs(env, RunFilter(tag="x")) == 3
    assert store.runs.count_runs(env, RunFilter(task_ids=("resize",))) == 1
    assert store.runs.count_runs(env, RunFilter(statuses=("COMPLETED",))) == 0
