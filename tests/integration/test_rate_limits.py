"""Rate limits through a real server and worker on both backends: a queue of two starts in any 2 s
starts six runs two by two, and per concurrency key each tenant has its own window. Runs over the
rate wait QUEUED and start as soon as the window frees (the scheduler wakes the worker's claim: a
claim would otherwise wait out its long-poll)."""

from __future__ import annotations

from hightide import Client, RunStatus
from tests.support import wait_finished

WINDOW = 2.0  # project/trigger/queues.py


def test_a_rate_limited_queue_starts_at_most_its_limit_in_any_window(client: Client) -> None:
    handles = [client.trigger("metered", {}) for _ in range(6)]
    runs = [wait_finished(client, handle.id, timeout=30) for handle in handles]
    assert [run.status for run in runs] == [RunStatus.COMPLETED] * 6
    starts = sorted(run.started_at.timestamp() for run in runs)
    # Any three starts span more than the window (by the server's clock, which keeps the window).
    assert all(starts[i + 2] - starts[i] >= WINDOW for i in range(len(starts) - 2)), starts
    assert starts[-1] - starts[0] < 3 * WINDOW + 4, f"the freed windows were not used promptly: {starts}"
    queue = client.queues.retrieve("metered")
    assert queue.rate_limit is not None and (queue.rate_limit.limit, queue.rate_limit.period) == (2, WINDOW)


def test_per_key_each_tenant_has_its_own_window(client: Client) -> None:
    handles = [client.trigger("tenant-metered", {}, concurrency_key=tenant) for tenant in ("acme", "bolt") * 2]
    runs = [wait_finished(client, handle.id, timeout=30) for handle in handles]
    assert [run.status for run in runs] == [RunStatus.COMPLETED] * 4
    assert [run.concurrency_key for run in runs] == ["acme", "bolt", "acme", "bolt"]
    acme1, bolt1, acme2, bolt2 = (run.started_at.timestamp() for run in runs)
    assert abs(acme1 - bolt1) < WINDOW  # one tenant's window does not hold the other back
    assert acme2 - acme1 >= WINDOW and bolt2 - bolt1 >= WINDOW
