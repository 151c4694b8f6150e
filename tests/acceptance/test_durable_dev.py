"""Durable execution under ``hightide dev``, driven the way a developer drives it: subtasks, timers,
tokens and steps in a real project, with a 1 s checkpoint threshold so that waits of 2-4 s suspend
the run (``WAITING``, no process, no slot) and it is replayed from the top when the wait resolves."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

from hightide import Client, Run, Token
from tests.acceptance.conftest import Dev
from tests.support import assert_eventually

TIMEOUT = 30.0  # generous: a loaded 2-core machine runs this suite
FINISHED = ("COMPLETED", "FAILED", "CRASHED", "SYSTEM_FAILURE", "TIMED_OUT", "CANCELED")

CONFIG = """
    from hightide import define_config

    config = define_config(
        dirs=["trigger"],
        checkpoint_threshold=1,  # seconds: longer waits suspend the run
    )
"""

PARENT_AND_CHILD = """
    from hightide import logger, task, wait


    @task(id="child-task")
    async def child_task(payload: dict) -> str:
        logger.info("Child task received", data=payload["data"])
        return "Child task result"


    @task(id="parent-task")
    async def parent_task(payload: dict) -> dict:
        logger.info("Starting parent task")
        # The run is checkpointed here and its process and slot are released...
        result = await child_task.trigger_and_wait({"data": "some data"})
        logger.info("Child task result", output=result.output)
        # ...and again for the duration of this wait.
        await wait.for_(seconds=2)
        logger.info("Resumed after 2 seconds")
        return {"message": "Parent task completed", "child": result.output, "child_ok": result.ok, "child_run": result.id}
"""

ORDER_WORKFLOW = """
    from pathlib import Path

    from hightide import Context, idempotency_keys, task


    def count(path: str, line: str) -> None:
        with Path(path).open("a") as ledger:
            ledger.write(line + "\\n")


    @task(id="charge-customer")
    async def charge_customer(payload: dict) -> dict:
        count(payload["ledger"], f"charged {payload['order_id']}")
        return {"charge_id": f"ch_{payload['order_id']}"}


    @task(id="fulfil-order")
    async def fulfil_order(payload: dict) -> dict:
        count(payload["ledger"], f"shipped {payload['order_id']} paid by {payload['charge_id']}")
        return {"tracking_id": f"trk_{payload['order_id']}"}


    @task(id="process-order", retry={"max_attempts": 5})
    async def process_order(payload: dict, ctx: Context) -> dict:
        order_id = payload["order_id"]
        # Scoped to this run, across its retries.
        key = await idempotency_keys.create(order_id)
        charge = await charge_customer.trigger_and_wait(
            {"order_id": order_id, "ledger": payload["charges"]}, idempotency_key=key
        ).unwrap()
        fulfilment = await fulfil_order.trigger_and_wait(
            {"order_id": order_id, "charge_id": charge["charge_id"], "ledger": payload["fulfilments"]},
            idempotency_key=key,
        ).unwrap()
        if ctx.attempt.number == 1:
            raise RuntimeError("the confirmation email could not be sent")
        return {"success": True, "tracking_id": fulfilment["tracking_id"], "attempt": ctx.attempt.number}
"""

TOKEN_WAITER = """
    from hightide import task, wait


    @task(id="await-approval")
    async def await_approval(payload: dict) -> dict:
        token = await wait.create_token(timeout="10m", tags=[payload["batch"], f"n-{payload['n']}"])
        result = await wait.for_token(token)
        return {"n": payload["n"], "ok": result.ok, "approval": result.output}
"""

TIMER = """
    from hightide import task, wait


    @task(id="sleep-on-it")
    async def sleep_on_it(payload: dict) -> dict:
        await wait.for_(seconds=payload["seconds"])
        return {"n": payload["n"], "slept": payload["seconds"]}
"""

DIES_ON_REPLAY = """
    import os
    from pathlib import Path

    from hightide import Context, step, task, wait


    def charge(path: str) -> int:
        with Path(path).open("a") as ledger:
            ledger.write("charged\\n")
        return len(Path(path).read_text().splitlines())


    @task(id="dies-on-replay", retry={"max_attempts": 3, "min_timeout": 0.1, "max_timeout": 0.2})
    async def dies_on_replay(payload: dict, ctx: Context) -> dict:
        charges = await step("charge", charge, payload["ledger"])
        waited, died = Path(payload["waited"]), Path(payload["died"])
        if waited.exists() and not died.exists():
            # Replaying after the wait below: the process dies (once) before reaching it again.
            died.write_text(f"attempt {ctx.attempt.number}")
            os._exit(1)
        waited.write_text(f"attempt {ctx.attempt.number}")
        await wait.for_(seconds=2)
        return {"charges_seen": charges, "attempt": ctx.attempt.number}
"""


def durable_project(project: Callable[..., Path], **tasks: str) -> Path:
    """A project whose config suspends waits longer than 1 s, with ``trigger/NAME.py`` for each task file."""
    return project({"hightide.config.py": CONFIG, **{f"trigger/{name}.py": src for name, src in tasks.items()}})


def wait_for_status(dev: Dev, run_id: str, *statuses: str, timeout: float = TIMEOUT) -> Run:
    def reached() -> Run:
        run = dev.client.runs.retrieve(run_id)
        assert run.status in statuses, f"{run_id} is {run.status}, waiting for {statuses}"
        return run

    return assert_eventually(reached, timeout=timeout, interval=0.1)


def statuses_until_finished(dev: Dev, run_id: str, timeout: float = TIMEOUT) -> tuple[Run, list[str]]:
    """Poll the run until it finishes; return it and every status seen on the way (in order, deduplicated)."""
    seen: list[str] = []

    def finished() -> Run:
        run = dev.client.runs.retrieve(run_id)
        if not seen or seen[-1] != run.status:
            seen.append(run.status)
        assert run.is_finished, f"{run_id} is {run.status} (seen {seen})"
        return run

    return assert_eventually(finished, timeout=timeout, interval=0.05), seen


def runs_with_tag(client: Client, tag: str, status: str | None = None) -> list[Run]:
    return list(client.runs.list(tag=tag, status=status, page_size=1000))


def wait_until_all(dev: Dev, tag: str, status: str, count: int, timeout: float = TIMEOUT) -> list[Run]:
    """Wait until ``count`` runs tagged ``tag`` are ``status``; fail at once if any finished otherwise."""

    def reached() -> list[Run]:
        runs = runs_with_tag(dev.client, tag)
        wrong = [(r.id, r.status, r.error) for r in runs if r.is_finished and r.status != status]
        if wrong:
            raise RuntimeError(f"{len(wrong)} runs ended otherwise, e.g. {wrong[:3]}")
        there = [r for r in runs if r.status == status]
        assert len(there) == count, f"{len(there)}/{count} runs {status} ({len(runs)} triggered)"
        return there

    return assert_eventually(reached, timeout=timeout, interval=0.25)


def dev_lines(dev: Dev, run_id: str, text: str) -> list[str]:
    """Lines of the ``hightide dev`` output about ``run_id`` that contain ``text``."""
    return [line for line in dev.output().splitlines() if run_id in line and text in line]


def test_a_parent_suspends_for_its_child_and_a_timer_and_completes_in_one_attempt(
    project: Callable[..., Path], dev: Callable[..., Dev]
) -> None:
    server = dev(durable_project(project, parents=PARENT_AND_CHILD))
    handle = server.client.trigger("parent-task", {})

    run, seen = statuses_until_finished(server, handle.id)

    assert run.status == "COMPLETED", run.error
    assert run.output["message"] == "Parent task completed"
    assert run.output["child"] == "Child task result" and run.output["child_ok"] is True
    assert "WAITING" in seen, f"the parent never suspended: {seen}"
    assert run.attempt_count == 1  # a suspension continues the attempt; it is not a retry
    assert [a.status for a in run.attempts] == ["COMPLETED"]
    child = server.client.runs.retrieve(run.output["child_run"])
    assert (child.task_id, child.status, child.parent_run_id) == ("child-task", "COMPLETED", handle.id)

    # The terminal shows the run suspending, then finishing...
    shown = server.proc.wait_for_output(f"{handle.id}  #1  COMPLETED")
    lines = dev_lines(server, handle.id, "  #1  ")
    child_done = next(i for i, line in enumerate(lines) if "Child task result" in line)
    assert any("  #1  WAITING" in line for line in lines[child_done:]), f"no suspension for the timer:\n{shown}"
    # ...and its log reads as one execution: the replays do not print the earlier lines again.
    for message in ("Starting parent task", "Child task result", "Resumed after 2 seconds"):
        assert len(dev_lines(server, handle.id, f"  #1  {message}")) == 1, (message, shown)
    assert [r.message for r in server.client.runs.logs(handle.id)] == [
        "Starting parent task",
        "Child task result",
        "Resumed after 2 seconds",
    ]


def test_a_retried_order_workflow_charges_and_fulfils_once(
    project: Callable[..., Path], dev: Callable[..., Dev], tmp_path: Path
) -> None:
    server = dev(durable_project(project, orders=ORDER_WORKFLOW))
    charges, fulfilments = tmp_path / "charges.txt", tmp_path / "fulfilments.txt"
    payload = {"order_id": "order-42", "charges": str(charges), "fulfilments": str(fulfilments)}

    handle = server.client.trigger("process-order", payload)
    run = wait_for_status(server, handle.id, *FINISHED, timeout=45)

    assert run.status == "COMPLETED", run.error
    assert run.output == {"success": True, "tracking_id": "trk_order-42", "attempt": 2}
    assert run.attempt_count == 2
    assert [a.status for a in run.attempts] == ["FAILED", "COMPLETED"]
    assert run.attempts[0].error["message"] == "the confirmation email could not be sent"
    # The retry got the cached child results: the customer was charged once and the order shipped once.
    assert charges.read_text().splitlines() == ["charged order-42"]
    assert fulfilments.read_text().splitlines() == ["shipped order-42 paid by ch_order-42"]
    assert len(list(server.client.runs.list(task="charge-customer"))) == 1
    assert len(list(server.client.runs.list(task="fulfil-order"))) == 1

    # The trace tells the same story: both children ran under the first attempt, in the parent's
    # trace; the retry replayed them, so its attempt has no trigger spans of its own.
    headers = {"Authorization": f"Bearer {server.secret_key}"}
    trace = httpx.get(f"{server.api_url}/api/v1/runs/{handle.id}/trace", headers=headers).json()
    attempts = {s["name"]: s["span_id"] for s in trace["spans"] if s["run_id"] == handle.id and s["kind"] == "attempt"}
    triggers = [(s["name"], s["parent_span_id"]) for s in trace["spans"] if s["kind"] == "wait"]
    assert triggers == [
        ("trigger_and_wait charge-customer", attempts["attempt 1"]),
        ("trigger_and_wait fulfil-order", attempts["attempt 1"]),
    ]
    children = {s["name"] for s in trace["spans"] if s["kind"] == "run" and s["run_id"] != handle.id}
    assert children == {"charge-customer", "fulfil-order"}


def token_number(token: Token) -> int:
    """The ``n`` of the run that created ``token`` (its ``n-N`` tag)."""
    [n] = [int(tag[2:]) for tag in token.tags if tag.startswith("n-")]
    return n


def complete_tokens(client: Client, batch: str) -> int:
    """Approve every waiting token tagged ``batch``, each with the number of the run that created it."""
    done = 0
    for token in list(client.waitpoints.list_tokens(tag=batch, status="WAITING", page_size=1000)):
        client.waitpoints.complete_token(token.id, {"approved": token_number(token)})
        done += 1
    return done


def test_two_hundred_runs_wait_on_tokens_with_four_slots(project: Callable[..., Path], dev: Callable[..., Dev]) -> None:
    server = dev(durable_project(project, approvals=TOKEN_WAITER), "--max-concurrent-runs", "4")
    client, batch, count = server.client, f"batch-{uuid.uuid4().hex[:8]}", 200
    began = time.monotonic()

    items = [
        {"task": "await-approval", "payload": {"batch": batch, "n": n}, "options": {"tags": [batch]}}
        for n in range(count)
    ]
    handles = [h for i in range(0, count, 250) for h in client.batch_trigger(items[i : i + 250]).runs]
    assert len({h.id for h in handles}) == count

    # 200 runs waiting at once through 4 slots: each one gave its slot back when it suspended.
    wait_until_all(server, batch, "WAITING", count, timeout=90)
    suspended_after = time.monotonic() - began
    assert len(list(client.waitpoints.list_tokens(tag=batch, status="WAITING", page_size=1000))) == count

    assert complete_tokens(client, batch) == count

    runs = wait_until_all(server, batch, "COMPLETED", count, timeout=90)
    outputs = sorted((r.output for r in runs), key=lambda o: o["n"])
    assert outputs == [{"n": n, "ok": True, "approval": {"approved": n}} for n in range(count)]
    assert all(r.attempt_count == 1 for r in runs)
    print(
        f"{count} runs: all WAITING after {suspended_after:.1f}s, all COMPLETED after {time.monotonic() - began:.1f}s"
    )


def stop_dev(server: Dev) -> None:
    """Ctrl-C in the terminal running ``hightide dev``; it exits cleanly."""
    server.close_client()
    server.proc.interrupt()
    assert server.proc.wait(timeout=20) == 0, server.output()


def test_waiting_runs_survive_a_restart_of_dev_and_timers_that_fired_meanwhile_resume(
    project: Callable[..., Path], dev: Callable[..., Dev]
) -> None:
    root = durable_project(project, approvals=TOKEN_WAITER, timers=TIMER)
    first = dev(root)
    batch = f"restart-{uuid.uuid4().hex[:8]}"
    waiters = [first.client.trigger("await-approval", {"batch": batch, "n": n}, tags=[batch]).id for n in range(3)]
    wait_until_all(first, batch, "WAITING", len(waiters))
    # The app hands each token's URL to a webhook sender before dev restarts.
    urls = {token_number(t): t.url for t in first.client.waitpoints.list_tokens(tag=batch)}
    assert sorted(urls) == [0, 1, 2]
    # Timers last, so that their 4 s are still running when dev stops.
    timers = [first.client.trigger("sleep-on-it", {"n": n, "seconds": 4}, tags=[f"{batch}-t"]).id for n in range(3)]
    wait_until_all(first, f"{batch}-t", "WAITING", len(timers))

    stop_dev(first)

    # While it is down every run stays WAITING (Ctrl-C cancels executing runs only), and the timers'
    # time passes.
    ids = timers + waiters
    with sqlite3.connect(root / ".hightide" / "dev.db") as db:
        left = dict(db.execute(f"SELECT id, status FROM runs WHERE id IN ({','.join('?' * len(ids))})", ids).fetchall())
        (resume_at,) = db.execute(
            "SELECT max(resume_at) FROM waitpoints WHERE kind = 'DURATION' "
            f"AND owner_run_id IN ({','.join('?' * len(timers))})",
            timers,
        ).fetchone()
    assert left == dict.fromkeys(ids, "WAITING")
    assert resume_at is not None
    time.sleep(max(0.0, resume_at - time.time()) + 0.5)  # the clock is what this test waits for

    second = dev(root, port=first.port)  # the same port: the token URLs handed out still point at it
    # The timers are overdue: they resume at once, with nothing else done.
    for run_id in timers:
        run = wait_for_status(second, run_id, *FINISHED)
        assert run.status == "COMPLETED", run.error
        assert run.output["slept"] == 4 and run.attempt_count == 1
    assert [second.client.runs.retrieve(run_id).status for run_id in waiters] == ["WAITING"] * 3

    for n, url in urls.items():  # a webhook: plain JSON, no key
        response = httpx.post(url, json={"approved": n}, timeout=10)
        assert response.status_code == 200, response.text
    for n, run_id in enumerate(waiters):
        run = wait_for_status(second, run_id, *FINISHED)
        assert run.status == "COMPLETED", run.error
        assert run.output == {"n": n, "ok": True, "approval": {"approved": n}}
        assert run.attempt_count == 1


def test_a_runner_that_dies_during_a_replay_is_retried_and_its_step_still_runs_once(
    project: Callable[..., Path], dev: Callable[..., Dev], tmp_path: Path
) -> None:
    server = dev(durable_project(project, fragile=DIES_ON_REPLAY))
    ledger, waited, died = tmp_path / "ledger.txt", tmp_path / "waited", tmp_path / "died"
    payload = {"ledger": str(ledger), "waited": str(waited), "died": str(died)}

    handle = server.client.trigger("dies-on-replay", payload)
    run, seen = statuses_until_finished(server, handle.id, timeout=45)

    assert run.status == "COMPLETED", run.error
    assert "WAITING" in seen, seen
    assert died.read_text() == "attempt 1"  # the replay after the wait did die
    assert run.attempt_count == 2
    assert [a.status for a in run.attempts] == ["FAILED", "COMPLETED"]
    assert "exited with code 1" in run.attempts[0].error["message"]
    assert run.output == {"charges_seen": 1, "attempt": 2}
    assert ledger.read_text().splitlines() == ["charged"]  # once, across a replay, a crash and a retry
