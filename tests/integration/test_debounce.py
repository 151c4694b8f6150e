"""Debounce through a real server and worker on both backends, with the SDK: triggers with one key
while its run is delayed return that run and push it back; the run starts once, with the first
payload (leading) or the last (trailing); an idempotency key wins over a debounce."""

from __future__ import annotations

import uuid

from hightide import Client, RunStatus
from tests.support import wait_finished


def test_triggers_with_one_key_run_once_with_the_last_payload_when_trailing(client: Client) -> None:
    debounce = {"key": f"user-{uuid.uuid4().hex[:8]}", "delay": "1s", "mode": "trailing"}
    handles = [client.trigger("echo", {"n": n}, debounce=debounce) for n in range(3)]
    assert len({h.id for h in handles}) == 1
    assert [h.is_cached for h in handles] == [False, True, True]
    assert client.runs.retrieve(handles[0].id).status == RunStatus.DELAYED
    run = wait_finished(client, handles[0].id)
    assert run.status == RunStatus.COMPLETED and run.output["payload"] == {"n": 2}

    # The run started: the key makes a new run.
    after = client.trigger("echo", {"n": 3}, debounce=debounce)
    assert after.id != handles[0].id and not after.is_cached
    client.runs.cancel(after.id)


def test_leading_keeps_the_first_payload_and_max_delay_caps_the_wait(client: Client) -> None:
    debounce = {"key": f"user-{uuid.uuid4().hex[:8]}", "delay": "2s", "max_delay": "2s"}
    first = client.trigger("echo", {"n": 1}, debounce=debounce)
    planned = client.runs.retrieve(first.id).delay_until
    second = client.trigger("echo", {"n": 2}, debounce=debounce)
    assert second.id == first.id
    assert client.runs.retrieve(first.id).delay_until == planned  # at its max_delay already: not pushed
    run = wait_finished(client, first.id)
    assert run.output["payload"] == {"n": 1}


def test_an_idempotency_key_wins_over_a_debounce(client: Client) -> None:
    key = f"order-{uuid.uuid4().hex[:8]}"
    done = wait_finished(client, client.trigger("echo", {}, idempotency_key=key).id)
    again = client.trigger("echo", {}, idempotency_key=key, debounce={"key": key, "delay": "1h"})
    assert again.id == done.id and again.is_cached
