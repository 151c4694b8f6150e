"""The worker protocol: claim (long-poll), heartbeat, report results."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import anyio

from hightide.core.failures import Failure, FailureKind
from hightide.core.protocol import AttemptResult, ResultReply
from hightide.core.states import RunEvent, RunStatus, transition
from hightide.core.tracing import attempt_span_id, new_span_id
from hightide.engine.base import HOOKS_LEASE, EngineCore, cancel_key
from hightide.engine.payloads import check_size
from hightide.engine.traces import Traces, trace_ids
from hightide.engine.triggering import Triggering
from hightide.errors import ValidationError
from hightide.store.records import (
    Environment,
    LogEntry,
    Run,
    RunChange,
    SpanRecord,
    Telemetry,
    Version,
)
from hightide.store.releases import Held

if TYPE_CHECKING:
    from hightide.engine.journal import Journal, Operation


class Execution:
    """The worker protocol: claim (long-poll), release, heartbeat, report results."""

    def __init__(self, core: EngineCore, triggering: Triggering, journal: Journal, traces: Traces) -> None:
        self.core = core
        self.store = core.store
        self.triggering = triggering
        self.journal = journal
        self.traces = traces

    def claim(
        self,
        env: Environment,
        worker_id: str,
        version: Version,
        limit: int,
        claim_id: str | None = None,
        last: bool = True,
    ) -> list[Run]:
        """Up to ``limit`` runs for ``worker_id``. Each try of one claim carries the same ``claim_id``:
        a try after one that took runs gets the same runs, and a claim released, or answered empty
        on its ``last`` look, gets none."""
        return self.store.claims.claim_runs(
            env.id,
            version_task_ids(version),
            worker_id=worker_id,
            version=version.version,
            limit=limit,
            lease_seconds=self.core.settings.lease_seconds,
            now=self.core.clock(),
            claim_id=claim_id,
            last=last,
        )

    def owed_hooks(self, env: Environment, version: Version, limit: int) -> list[Run]:
        """Runs owing their final hooks that a worker of ``version`` can run (their own version's
        workers, or any worker of the current version), leased to it for ``HOOKS_LEASE``."""
        current = self.store.environments.current_version(env.id)
        versions = None if current is not None and current.id == version.id else [version.version]
        return self.store.hooks.take(env.id, versions, self.core.clock(), HOOKS_LEASE, limit)

    def hooks_done(self, env: Environment, run_ids: Sequence[str]) -> list[str]:
        return self.store.hooks.done(env.id, run_ids)

    def release(
        self, env: Environment, worker_id: str, held: Sequence[Held], claim_ids: Sequence[str] = ()
    ) -> list[Run]:
        """Give back, unfinished, the runs of ``held`` and those the claims ``claim_ids`` took (a
        stopping worker; a claim whose answer it never saw): each is QUEUED again at once, with no
        attempt used, and continues its attempt on its next claim. The trace shows each release as
        a ``released`` span in its attempt. Returns the runs released."""
        now = self.core.clock()
        released = self.store.releases.release_runs(env.id, worker_id, held, claim_ids, now=now)
        spans = []
        for run in released:
            if not run.attempt_count:  # given back before it started: no attempt to show it in
                continue
            trace_id, span_id = trace_ids(run)
            spans.append(
                SpanRecord(
                    trace_id=trace_id,
                    span_id=new_span_id(),
                    parent_span_id=attempt_span_id(span_id, run.attempt_count),
                    run_id=run.id,
                    attempt=run.attempt_count,
                    name="released",
                    kind="release",
                    start_time=now,
                    end_time=now,
                    attributes={"hightide.worker.id": worker_id},
                )
            )
        if spans:
            self.store.telemetry.append_telemetry([], spans)
        return released

    async def claim_wait(
        self,
        env: Environment,
        worker_id: str,
        version: Version,
        limit: int,
        wait: float,
        gone: Callable[[], Awaitable[bool]] | None = None,
        claim_id: str | None = None,
    ) -> list[Run]:
        """Claim, long-polling up to ``wait`` seconds for work to appear. ``gone`` tells whether the
        worker hung up: then nothing is claimed for it."""
        deadline = self.core.clock() + wait
        first = True
        while True:
            if gone is not None and await gone():
                return []  # its claim id stays open: the worker tries it again, or releases it
            gen = self.core.generation(env.id)
            version = self.triggering.newest_version(worker_id, version)
            remaining = deadline - self.core.clock()
            last = remaining <= 0 or self.core.closing
            runs: list[Run] = []
            # After a wake-up, look before taking the write lock: most changes bring no work here.
            # The last look of a claim with an id always writes: answered empty, the id is closed.
            if (
                first
                or (last and claim_id is not None)
                or await anyio.to_thread.run_sync(
                    self.store.claims.has_ready_runs, env.id, version_task_ids(version), self.core.clock()
                )
            ):
                take = 0 if self.core.closing else limit  # closing: only answer the id, take no new work
                runs = await anyio.to_thread.run_sync(self.claim, env, worker_id, version, take, claim_id, last)
            first = False
            if runs or last:
                return runs
            await self.core.sleep_until_change(env.id, gen, min(remaining, self.core.settings.claim_poll_interval))

    async def heartbeat(
        self, env: Environment, worker_id: str, held: Sequence[tuple[str, int]], wait: float, extend: bool = True
    ) -> list[str]:
        """Extend the leases of ``held`` (run id, attempt) and return the runs the worker must stop
        (cancelled, or lost to an expired lease). Waits up to ``wait`` seconds for one to appear."""
        # Only cancellations end the wait early (their wake-ups have their own key, so the steady
        # stream of claims and completions does not); a lapsed lease is reported at the deadline.
        # The generation is read before each look, so that a cancel landing during it is not missed.
        key = cancel_key(env.id)
        gen = self.core.generation(key)
        now = self.core.clock()
        if extend:
            lost = await anyio.to_thread.run_sync(
                self.store.claims.extend_leases, worker_id, list(held), now + self.core.settings.lease_seconds, now
            )
        else:
            lost = await anyio.to_thread.run_sync(self.store.claims.runs_not_held, worker_id, list(held))
        deadline = now + wait
        while not lost and held and not self.core.closing:
            remaining = deadline - self.core.clock()
            if remaining <= 0:
                break
            await self.core.sleep_until_change(key, gen, min(remaining, self.core.settings.claim_poll_interval))
            gen = self.core.generation(key)
            lost = await anyio.to_thread.run_sync(self.store.claims.runs_not_held, worker_id, list(held))
        return lost

    def report(
        self,
        env: Environment,
        results: Sequence[AttemptResult[Operation]],
        worker_id: str = "",
        logs: Sequence[LogEntry] = (),
        spans: Sequence[SpanRecord] = (),
    ) -> list[ResultReply]:
        """Apply a worker's batch of attempt results, with the logs and spans that came with them.
        Each reply says whether the result was accepted and the run's new status; a stale result is
        refused, not applied. Outcomes go in one transaction, and suspensions (``waiting_on``) in
        another; the logs and spans go in the first of them."""
        telemetry = self.traces.checked_telemetry(env, logs, spans)
        finished = [res for res in results if res.waiting_on is None]
        waiting = [res for res in results if res.waiting_on is not None]
        if not results and telemetry is not None:
            self.store.telemetry.append_telemetry(telemetry.logs, telemetry.spans)
        done = iter(self._report_outcomes(env, finished, worker_id, telemetry) if finished else [])
        suspended = iter(
            self.journal.suspend_many(env, waiting, worker_id, None if finished else telemetry) if waiting else []
        )
        return [next(done) if res.waiting_on is None else next(suspended) for res in results]

    def _report_outcomes(
        self,
        env: Environment,
        results: Sequence[AttemptResult[Operation]],
        worker_id: str,
        telemetry: Telemetry | None,
    ) -> list[ResultReply]:
        """The finished attempts of a report. Each applies only to the execution it came from: the
        attempt, the claim's ``execution`` when sent, and the reporting worker (after a release, the
        same attempt may be another worker's now)."""
        expect_worker = worker_id or None
        now = self.core.clock()
        limit = self.core.settings.max_payload_bytes
        failures: dict[int, Failure] = {}
        for i, res in enumerate(results):
            if not res.ok:
                failures[i] = Failure.from_dict(res.error or {"name": "Error"})
            else:
                try:
                    check_size(res.output, limit, "output")
                except ValidationError as exc:  # too large, or not plain JSON: Hightide cannot keep it
                    failures[i] = Failure("InvalidOutput", exc.message, kind=FailureKind.SYSTEM)
        runs = self.store.runs.get_runs([results[i].run_id for i in failures], env.id) if failures else {}
        changes: list[RunChange | None] = []
        retrying = False
        for i, res in enumerate(results):
            if i not in failures:
                target = transition(RunStatus.EXECUTING, RunEvent.COMPLETE)
                changes.append(
                    RunChange(
                        res.run_id,
                        RunStatus.EXECUTING.value,
                        res.attempt,
                        {"status": target.value, "output": res.output, "finished_at": now, "lease_expires_at": None},
                        {"status": target.value, "finished_at": now},
                        expect_execution=res.execution,
                        expect_worker=expect_worker,
                    )
                )
                continue
            run = runs.get(res.run_id)
            stale = run is not None and (
                (res.execution is not None and run.executions != res.execution)
                or (expect_worker is not None and run.worker_id != expect_worker)
            )
            if run is None or run.status != RunStatus.EXECUTING or run.attempt_count != res.attempt or stale:
                changes.append(None)
                continue
            failed, retry = self.core.failure_change(run, failures[i], now, override=res.retry)
            failed = replace(failed, expect_execution=res.execution, expect_worker=expect_worker)
            retrying = retrying or retry
            changes.append(failed)
        applied = iter(self.store.runs.update_runs(env.id, [c for c in changes if c is not None], now, telemetry))
        replies = []
        for res, maybe in zip(results, changes, strict=True):
            if maybe is not None and next(applied):
                replies.append(ResultReply(res.run_id, True, status=maybe.values["status"]))
            else:
                message = f"run {res.run_id} is not executing attempt {res.attempt} any more; result discarded"
                replies.append(ResultReply(res.run_id, False, code="conflict", message=message))
        if retrying:
            self.core.due()
        return replies


def version_task_ids(version: Version) -> list[str]:
    return [task["id"] for task in version.manifest.get("tasks", [])]
