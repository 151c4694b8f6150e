"""The store contract, part 1: environments, keys, versions, logs and spans.

Runs on SQLite and PostgreSQL alike (see conftest.py); claims and leases are in
test_store_claims.py, triggering and reading runs in test_store_runs.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from hightide.errors import AlreadyExistsError
from hightide.store import Store
from hightide.store.records import LogEntry, SpanRecord, Telemetry
from tests.store.factories import NOW, insert, make_env, new_run

# -- projects, environments, keys ------------------------------------------------------------


def test_ensure_project_and_environment_are_idempotent(store: Store) -> None:
    project = store.environments.ensure_project("acme", NOW)
    assert store.environments.ensure_project("acme", NOW + 1) == project
    assert store.environments.ensure_project("other", NOW) != project

    env = store.environments.ensure_environment(project, "dev", "development", 10, NOW)
    assert store.environments.ensure_environment(project, "dev", "development", 99, NOW + 1) == env
    assert store.environments.ensure_environment(project, "prod", "production", 10, NOW) != env
    other_project = store.environments.ensure_project("other", NOW)
    assert store.environments.ensure_environment(other_project, "dev", "development", 10, NOW) != env

    found = store.environments.get_environment("acme", "dev")
    assert found is not None
    assert (found.id, found.project_id, found.project_slug, found.slug, found.kind, found.concurrency_limit) == (
        env,
        project,
        "acme",
        "dev",
        "development",
        10,  # the second ensure did not change the existing environment
    )
    assert store.environments.get_environment("acme", "staging") is None
    assert store.environments.get_environment("nobody", "dev") is None


def test_servers_starting_together_make_one_default_project(
    database_url: str, open_stores: Callable[[str], Store]
) -> None:
    """Eight stores (as eight servers would) bootstrap one database at the same moment: none fails,
    and all find the same project and environments."""
    from hightide.engine.environments import bootstrap

    stores = [open_stores(database_url) for _ in range(8)]
    start = threading.Barrier(len(stores))

    def boot(store: Store) -> str:
        start.wait()
        return bootstrap(store, NOW)

    with ThreadPoolExecutor(len(stores)) as pool:
        projects = set(pool.map(boot, stores))
    assert len(projects) == 1
    envs = {slug: stores[0].environments.get_environment("default", slug) for slug in ("dev", "staging", "prod")}
    assert all(env is not None and env.project_id in projects for env in envs.values())


def test_set_environment_concurrency(store: Store) -> None:
    env = make_env(store, concurrency_limit=5)
    store.environments.set_environment_concurrency(env, 42)
    found = store.environments.get_environment("acme", "dev")
    assert found is not None and found.concurrency_limit == 42


def test_api_keys_are_found_by_hash_until_revoked(store: Store) -> None:
    env = make_env(store)
    prod = store.environments.ensure_environment(
        store.environments.ensure_project("acme", NOW), "prod", "production", 10, NOW
    )
    store.environments.add_api_key(env, "hash-dev", "ht_dev_abcde", NOW)
    key_id = store.environments.add_api_key(prod, "hash-prod", "ht_prod_abcde", NOW)

    dev_env = store.environments.environment_for_key("hash-dev")
    assert dev_env is not None and (dev_env.id, dev_env.project_slug, dev_env.slug) == (env, "acme", "dev")
    prod_env = store.environments.environment_for_key("hash-prod")
    assert prod_env is not None and prod_env.id == prod
    assert store.environments.environment_for_key("hash-unknown") is None

    assert store.environments.revoke_api_key(key_id, NOW + 1)
    assert not store.environments.revoke_api_key(key_id, NOW + 2), "already revoked"
    assert not store.environments.revoke_api_key("key_missing", NOW + 2)
    assert store.environments.environment_for_key("hash-prod") is None
    assert store.environments.environment_for_key("hash-dev") is not None


def test_an_environments_keys_are_listed_live_first_newest_first_without_their_hashes(store: Store) -> None:
    env = make_env(store)
    other = store.environments.ensure_environment(
        store.environments.ensure_project("acme", NOW), "prod", "production", 10, NOW
    )
    old = store.environments.add_api_key(env, "hash-1", "ht_dev_aaaa", NOW)
    gone = store.environments.add_api_key(env, "hash-2", "ht_dev_bbbb", NOW + 1)
    new = store.environments.add_api_key(env, "hash-3", "ht_dev_cccc", NOW + 2)
    store.environments.add_api_key(other, "hash-4", "ht_prod_dddd", NOW)
    assert store.environments.revoke_api_key(gone, NOW + 3)

    keys = store.environments.list_api_keys(env)
    assert [(k.id, k.prefix, k.created_at, k.revoked_at) for k in keys] == [
        (new, "ht_dev_cccc", NOW + 2, None),
        (old, "ht_dev_aaaa", NOW, None),
        (gone, "ht_dev_bbbb", NOW + 1, NOW + 3),
    ]
    assert [k.revoked for k in keys] == [False, False, True]
    assert all(k.environment_id == env for k in keys)
    assert store.environments.list_api_keys("env_missing") == []


def test_an_api_key_hash_is_unique(store: Store) -> None:
    env = make_env(store)
    store.environments.add_api_key(env, "hash-dev", "ht_dev_abcde", NOW)
    with pytest.raises(AlreadyExistsError):
        store.environments.add_api_key(env, "hash-dev", "ht_dev_fghij", NOW)


# -- versions, tasks, queues -----------------------------------------------------------------


def test_versions_are_numbered_per_day_and_environment(store: Store) -> None:
    project = store.environments.ensure_project("acme", NOW)
    dev = store.environments.ensure_environment(project, "dev", "development", 10, NOW)
    prod = store.environments.ensure_environment(project, "prod", "production", 10, NOW)
    manifest = {"tasks": [{"id": "email", "queue": {"name": "task/email"}}]}

    first = store.environments.register_version(dev, "20270115", manifest, NOW)
    second = store.environments.register_version(dev, "20270115", manifest, NOW + 1)
    next_day = store.environments.register_version(dev, "20270116", manifest, NOW + 86_400)
    other_env = store.environments.register_version(prod, "20270115", manifest, NOW)

    assert [first.version, second.version, next_day.version, other_env.version] == [
        "20270115.1",
        "20270115.2",
        "20270116.1",
        "20270115.1",
    ]
    assert len({first.id, second.id, next_day.id, other_env.id}) == 4
    stored = store.environments.get_version(second.id)
    assert stored is not None
    assert (stored.environment_id, stored.version, stored.manifest, stored.created_at) == (
        dev,
        "20270115.2",
        manifest,
        NOW + 1,
    )
    assert store.environments.get_version("ver_missing") is None


def test_versions_past_nine_keep_counting(store: Store) -> None:
    env = make_env(store)  # already holds 20270115.1
    versions = [store.environments.register_version(env, "20270115", {"tasks": []}, NOW).version for _ in range(10)]
    assert versions[-2:] == ["20270115.10", "20270115.11"]


def test_register_version_makes_its_tasks_current(store: Store) -> None:
    env = make_env(store, tasks=[{"id": "email", "queue": {"name": "task/email"}, "max_duration": 60}])
    task = store.environments.get_task(env, "email")
    assert task is not None
    assert (task.queue, task.config["max_duration"]) == ("task/email", 60)

    moved = {"id": "email", "queue": {"name": "mail", "concurrency_limit": 2}, "max_duration": 30}
    version = store.environments.register_version(env, "20270115", {"tasks": [moved]}, NOW + 1)
    task = store.environments.get_task(env, "email")
    assert task is not None
    assert (task.environment_id, task.task_id, task.version_id, task.queue, task.config) == (
        env,
        "email",
        version.id,
        "mail",
        moved,
    )
    assert store.environments.get_task(env, "unknown") is None
    other = store.environments.ensure_environment(
        store.environments.ensure_project("acme", NOW), "prod", "production", 10, NOW
    )
    assert store.environments.get_task(other, "email") is None


# -- logs ------------------------------------------------------------------------------------


def test_logs_are_appended_and_listed_in_order(store: Store) -> None:
    env = make_env(store)
    run, other = insert(store, new_run(env), new_run(env, created_at=NOW + 1))
    entries = [LogEntry(run.id, 1, NOW + i, "info", f"line {i}", {"i": i, "nested": {"ok": True}}) for i in range(5)]
    store.telemetry.append_telemetry(entries[:3])
    store.telemetry.append_telemetry([LogEntry(other.id, 1, NOW, "error", "elsewhere", {})])
    store.telemetry.append_telemetry(entries[3:])
    store.telemetry.append_telemetry([])  # nothing to do, and no error

    listed = store.telemetry.list_logs(run.id)
    assert [entry for _, entry in listed] == entries
    ids = [log_id for log_id, _ in listed]
    assert ids == sorted(ids) and len(set(ids)) == 5

    assert [entry for _, entry in store.telemetry.list_logs(run.id, after_id=ids[1])] == entries[2:]
    assert store.telemetry.list_logs(run.id, after_id=ids[-1]) == []
    assert [entry for _, entry in store.telemetry.list_logs(run.id, limit=2)] == entries[:2]
    assert [entry.message for _, entry in store.telemetry.list_logs(other.id)] == ["elsewhere"]


def test_logs_need_an_existing_run(store: Store) -> None:
    with pytest.raises(AlreadyExistsError):  # a foreign-key violation is an integrity error
        store.telemetry.append_telemetry([LogEntry("run_missing", 1, NOW, "info", "orphan", {})])


# -- spans -----------------------------------------------------------------------------------


def _span(run_id: str, trace_id: str, name: str, start: float, **fields: object) -> SpanRecord:
    values: dict[str, object] = {
        "trace_id": trace_id,
        "span_id": f"{abs(hash((run_id, name))) % 16**16:016x}",
        "parent_span_id": None,
        "run_id": run_id,
        "attempt": 1,
        "name": name,
        "kind": "step",
        "start_time": start,
        "end_time": start + 1,
        **fields,
    }
    return SpanRecord(**values)  # type: ignore[arg-type]


def test_spans_are_stored_with_logs_and_listed_by_trace_oldest_first(store: Store) -> None:
    env = make_env(store)
    trace, other_trace = "a" * 32, "b" * 32
    parent, child, stranger = insert(
        store,
        new_run(env, trace_id=trace, span_id="1" * 16),
        new_run(env, created_at=NOW + 1, trace_id=trace, span_id="2" * 16, parent_span_id="3" * 16),
        new_run(env, created_at=NOW + 2, trace_id=other_trace, span_id="4" * 16),
    )
    late = _span(parent.id, trace, "late", NOW + 5, status="OK", attributes={"n": 1, "tags": ["x"]})
    wait = _span(parent.id, trace, "wait", NOW + 2, kind="wait", seq="t1/0", end_time=None)
    early = _span(child.id, trace, "early", NOW + 1, status="ERROR", events=[{"name": "exception", "time": NOW + 1.5}])
    log = LogEntry(parent.id, 1, NOW + 5, "info", "in late", {}, late.span_id)
    store.telemetry.append_telemetry([log], [late, wait])
    store.telemetry.append_telemetry([], [early, _span(stranger.id, other_trace, "elsewhere", NOW)])
    store.telemetry.append_telemetry([], [])  # nothing to do, and no error

    assert store.telemetry.list_spans(env, trace, limit=10) == [early, wait, late]
    assert store.telemetry.list_spans(env, trace, limit=2) == [early, wait]
    assert [s.name for s in store.telemetry.list_spans(env, other_trace, limit=10)] == ["elsewhere"]
    assert store.telemetry.list_spans(env, "c" * 32, limit=10) == []
    # Another environment may use the same trace id: neither sees the other's spans.
    prod = store.environments.ensure_environment(
        store.environments.ensure_project("acme", NOW), "prod", "production", 10, NOW
    )
    [foreign] = insert(store, new_run(prod, trace_id=trace, span_id="5" * 16))
    store.telemetry.append_telemetry([], [_span(foreign.id, trace, "foreign", NOW)])
    assert store.telemetry.list_spans(env, trace, limit=10) == [early, wait, late]
    assert [s.name for s in store.telemetry.list_spans(prod, trace, limit=10)] == ["foreign"]
    assert store.telemetry.run_traces([parent.id, foreign.id, "run_missing"], env) == {parent.id: (trace, "1" * 16)}
    [(_, stored_log)] = store.telemetry.list_logs(parent.id)
    assert stored_log.span_id == late.span_id

    runs, attempts = store.telemetry.runs_in_trace(env, trace, limit=10)
    assert [(r.id, r.trace_id, r.span_id, r.parent_span_id) for r in runs] == [
        (parent.id, trace, "1" * 16, None),
        (child.id, trace, "2" * 16, "3" * 16),
    ]
    assert attempts == []
    assert [r.id for r in store.telemetry.runs_in_trace(prod, trace, limit=10)[0]] == [foreign.id]


def test_a_reports_logs_and_spans_are_stored_in_the_transaction_of_its_results(store: Store) -> None:
    env = make_env(store)
    [run] = insert(store, new_run(env, trace_id="a" * 32, span_id="1" * 16))
    outcome = Telemetry([LogEntry(run.id, 1, NOW, "info", "with the outcome", {})])
    suspension = Telemetry([], [_span(run.id, "a" * 32, "with the suspension", NOW)])
    assert store.runs.update_runs(env, [], NOW, outcome) == []  # nothing applied, and the log is kept
    assert store.waitpoints.suspend_runs([], NOW, suspension) == []
    assert [entry.message for _, entry in store.telemetry.list_logs(run.id)] == ["with the outcome"]
    assert [s.name for s in store.telemetry.list_spans(env, "a" * 32, limit=10)] == ["with the suspension"]
    with pytest.raises(AlreadyExistsError):  # an orphan record rolls the whole report back
        store.runs.update_runs(env, [], NOW, Telemetry([LogEntry("run_missing", 1, NOW, "info", "orphan", {})]))


def test_spans_need_an_existing_run(store: Store) -> None:
    with pytest.raises(AlreadyExistsError):
        store.telemetry.append_telemetry([], [_span("run_missing", "a" * 32, "orphan", NOW)])
