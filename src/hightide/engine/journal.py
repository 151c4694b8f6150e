"""Durable operations: record each in the run's journal, hand the journal back resolved when the run
is claimed again, and suspend a run that waits (see docs/durable-execution.md)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from hightide.core.protocol import AttemptResult, ResultReply
from hightide.core.states import RunStatus
from hightide.engine.base import EngineCore
from hightide.engine.options import TriggerSpec
from hightide.engine.payloads import check_size
from hightide.engine.tokens import Tokens, TokenSpec, new_waitpoint
from hightide.engine.triggering import Triggering
from hightide.errors import ConflictError, NonDeterminismError, ValidationError
from hightide.store.records import Environment, JournalEntry, JournalView, Run, Suspension, Telemetry, Waitpoint

TRIGGER_KINDS = ("trigger", "batch_trigger", "trigger_and_wait", "batch_trigger_and_wait")
POSITION = re.compile(r"(?=.{1,128}$)(t\d{1,9}/)*\d{1,9}")  # see sdk/journal.py
MAX_TIME = 32503680000.0  # year 3000
KINDS = (*TRIGGER_KINDS, "wait", "create_token", "wait_for_token", "complete_token", "step")


@dataclass(frozen=True)
class Operation:
    """One durable operation as a runner asks to record it, at position ``seq`` of its run."""

    seq: str
    kind: str
    name: str
    specs: tuple[TriggerSpec, ...] = ()  # the trigger kinds
    resume_at: float | None = None  # wait
    idempotency_key: str | None = None  # wait
    idempotency_key_ttl: float | None = None  # wait
    token: TokenSpec | None = None  # create_token
    token_id: str | None = None  # wait_for_token, complete_token
    data: Any = None  # complete_token
    result: Any = None  # step
    execution: int | None = None  # the claim that is executing the run (refuses a stale execution)


WAIT_KINDS = frozenset({"wait", "wait_for_token", "trigger_and_wait", "batch_trigger_and_wait"})


@dataclass(frozen=True)
class RunWait:
    """One wait of a run, as its journal recorded it: a timer, a token, or runs it triggered and
    waited for, with their waitpoints and the awaited runs (of the same environment)."""

    entry: JournalEntry
    waitpoints: tuple[Waitpoint, ...]
    runs: tuple[Run, ...] = ()

    @property
    def done(self) -> bool:
        if self.entry.kind.endswith("_and_wait"):
            return bool(self.runs) and all(r.status.is_final for r in self.runs)
        return bool(self.waitpoints) and all(w.status != "WAITING" for w in self.waitpoints)

    @property
    def resolved_at(self) -> float | None:
        times = [w.completed_at for w in self.waitpoints]
        return None if not self.done or None in times else max(t for t in times if t is not None)


class Journal:
    """Durable operations: recorded in the run's journal, handed back resolved on the run's next
    execution, and the suspensions of runs that wait."""

    def __init__(self, core: EngineCore, triggering: Triggering, tokens: Tokens) -> None:
        self.core = core
        self.store = core.store
        self.triggering = triggering
        self.tokens = tokens

    def record(self, env: Environment, run_id: str, attempt: int, op: Operation) -> dict[str, Any]:
        """Record ``op`` (and do what it does, in the same transaction) for the run executing
        ``attempt``; returns the entry resolved as far as it is now. A position already recorded is
        returned as it was, after checking that it is the same operation."""
        self.core.get_run(env, run_id)
        if op.kind not in KINDS:
            raise ValidationError(f"kind: expected one of {list(KINDS)}", details={"field": "kind"})
        if not POSITION.fullmatch(op.seq):
            raise ValidationError(
                "seq: expected a journal position such as '3' or 't1/0' (at most 128 characters)",
                details={"field": "seq"},
            )
        now = self.core.clock()
        entry = JournalEntry(run_id, op.seq, op.kind, op.name)
        new_runs, waitpoint = [], None
        if op.kind in TRIGGER_KINDS:
            if not op.specs:
                raise ValidationError("items: a trigger needs at least one item", details={"field": "items"})
            new_runs = self.triggering.prepare(env, [replace(spec, parent_run_id=run_id) for spec in op.specs])
        elif op.kind == "wait":
            waitpoint = self._timer(env, run_id, op, now)
        elif op.kind == "create_token":
            waitpoint = self.tokens.new_token(env, op.token or TokenSpec(), run_id)
        elif op.kind == "wait_for_token":
            entry = replace(entry, waitpoint_ids=[self.tokens.get_token(env, required_token(op)).id])
        elif op.kind == "complete_token":
            required_token(op)
            self._complete_once(env, run_id, op)
            entry = replace(entry, result={"ok": True})
        elif op.kind == "step":
            check_size(op.result, self.core.settings.max_payload_bytes, "result")
            entry = replace(entry, result=op.result)
        recorded, new = self.store.waitpoints.record_entry(
            entry,
            attempt,
            new_runs=new_runs,
            await_runs=op.kind.endswith("_and_wait"),
            waitpoint=waitpoint,
            execution=op.execution,
            now=now,
        )
        if not new:
            check_same(recorded, op.kind, op.name)
        elif new_runs:
            self.triggering.announce(new_runs)
        if waitpoint is not None and (waitpoint.resume_at or waitpoint.timeout_at):
            self.core.due(waitpoint.resume_at or waitpoint.timeout_at)  # the scheduler fires timers and timeouts
        return self.resolve(recorded, self.store.waitpoints.entry_view(recorded))

    def _timer(self, env: Environment, run_id: str, op: Operation, now: float) -> Waitpoint:
        if op.resume_at is None or not math.isfinite(op.resume_at) or not 0 <= op.resume_at < MAX_TIME:
            raise ValidationError(
                "resume_at: a wait needs the time to resume at, in seconds since the epoch",
                details={"field": "resume_at"},
            )
        return new_waitpoint(
            env, "DURATION", run_id, now, op.idempotency_key, op.idempotency_key_ttl, resume_at=op.resume_at
        )

    def _complete_once(self, env: Environment, run_id: str, op: Operation) -> None:
        """Complete a token from inside a run. If an earlier execution of this position completed
        it and stopped before recording, the token is already COMPLETED: that is this call's effect."""
        view = self.store.waitpoints.journal_view([run_id])
        if any(e.seq == op.seq for e in view.entries.get(run_id, [])):
            return  # recorded already; `record_entry` returns that entry
        try:
            self.tokens.complete_token(env, op.token_id or "", op.data)
        except ConflictError as exc:
            if exc.details.get("status") != "COMPLETED":
                raise

    def waits(self, env: Environment, run_id: str) -> list[RunWait]:
        """What the run waited for and waits for, in the order it asked (the dashboard's run page)."""
        run = self.core.get_run(env, run_id)
        view = self.store.waitpoints.journal_view([run.id])
        waits = []
        for entry in view.entries.get(run.id, []):
            if entry.kind not in WAIT_KINDS:
                continue
            wps = tuple(view.waitpoints[i] for i in entry.waitpoint_ids if i in view.waitpoints)
            awaited = (view.runs.get(wp.run_id or "") for wp in wps)
            runs = tuple(r for r in awaited if r is not None and r.environment_id == env.id)
            waits.append(RunWait(entry, wps, runs))
        return sorted(waits, key=lambda w: (w.entry.created_at, w.entry.seq))

    # -- handing the journal back ---------------------------------------------------------------
    def journals(self, runs: Sequence[Run]) -> dict[str, list[dict[str, Any]]]:
        """The resolved journals of claimed runs (empty for runs that recorded nothing)."""
        runs = [run for run in runs if run.executions > 1]  # a first execution has recorded nothing yet
        if not runs:
            return {}
        view = self.store.waitpoints.journal_view([run.id for run in runs])
        retried = [run for run in runs if self._retrigger_failed(run, view)]
        if retried:
            view = self.store.waitpoints.journal_view([run.id for run in runs])
        return {run_id: [self.resolve(entry, view) for entry in entries] for run_id, entries in view.entries.items()}

    def _retrigger_failed(self, run: Run, view: JournalView) -> bool:
        """On a new attempt, children that failed and stopped the previous attempt are triggered
        again (the retry is for them); a failure the task went on from (it recorded more after it)
        is replayed as it was."""
        entries = view.entries.get(run.id, [])
        changed = False
        for entry in entries:
            if entry.attempt >= run.attempt_count or not entry.kind.endswith("_and_wait"):
                continue
            children = [view.runs.get(view.waitpoints[i].run_id or "") for i in entry.waitpoint_ids]
            failed = [c for c in children if c is not None and c.status.is_final and c.status != RunStatus.COMPLETED]
            if not failed:
                continue
            seen_at = max(c.finished_at or 0.0 for c in failed)
            if any(e.created_at > seen_at for e in entries if e.seq != entry.seq):
                continue
            env = self.store.environments.get_environment_by_id(run.environment_id)
            assert env is not None
            specs = [
                TriggerSpec(
                    task_id=c.task_id,
                    payload=c.payload,
                    tags=tuple(c.tags),
                    metadata=c.metadata,
                    queue=c.queue,
                    concurrency_key=c.concurrency_key,
                    max_attempts=c.max_attempts,
                    priority=c.priority,
                    parent_run_id=run.id,  # under the parent's new attempt, in the parent's trace
                )
                for c in failed
            ]
            new_runs = self.triggering.prepare(env, specs)
            replacements = {c.id: new for c, new in zip(failed, new_runs, strict=True)}
            self.store.waitpoints.retrigger_children(entry, run.attempt_count, replacements, self.core.clock())
            self.triggering.announce(new_runs)
            changed = True
        return changed

    def resolve(self, entry: JournalEntry, view: JournalView) -> dict[str, Any]:
        """An entry as a runner uses it: ``done`` with its ``result``, or still waiting."""
        # ``attempt`` and ``recorded_at`` tell a runner which waits it resumes from (on_resume hooks).
        base: dict[str, Any] = {
            "seq": entry.seq,
            "kind": entry.kind,
            "name": entry.name,
            "attempt": entry.attempt,
            "recorded_at": entry.created_at,
        }
        waits = [view.waitpoints[i] for i in entry.waitpoint_ids if i in view.waitpoints]
        if entry.kind.endswith("_and_wait"):
            children = [view.runs.get(wp.run_id or "") for wp in waits]
            done = all(child is not None and child.status.is_final for child in children)
            result = {"runs": [child_result(c) for c in children if c is not None]} if done else entry.result
            return {**base, "done": done, "result": result}
        if entry.kind == "wait":
            wp = waits[0]
            done = wp.status != "WAITING" or (wp.resume_at or 0) <= self.core.clock()
            return {**base, "done": done, "result": None, "resume_at": wp.resume_at}
        if entry.kind == "create_token":
            wp = waits[0]
            return {**base, "done": True, "result": {"id": wp.id, "url": self.tokens.token_callback_path(wp.id)}}
        if entry.kind == "wait_for_token":
            wp = waits[0]
            return {**base, "done": wp.status != "WAITING", "result": token_result(wp), "timeout_at": wp.timeout_at}
        return {**base, "done": True, "result": entry.result}

    # -- suspending -------------------------------------------------------------------------------
    def suspend_many(
        self,
        env: Environment,
        results: Sequence[AttemptResult[Operation]],
        worker_id: str,
        telemetry: Telemetry | None = None,
    ) -> list[ResultReply]:
        """A worker's suspensions, in one transaction with the timers they record (see
        ``sdk/journal.py``: a timer that suspends is sent with the suspension). Replies in order."""
        now = self.core.clock()
        items: list[Suspension | None] = []
        replies: list[ResultReply | None] = []
        for res in results:
            try:
                if any(op.kind != "wait" for op in res.record):
                    raise ValidationError("record: only timers are recorded with a suspension", details={})
                timers = tuple(
                    (JournalEntry(res.run_id, op.seq, op.kind, op.name), self._timer(env, res.run_id, op, now))
                    for op in res.record
                )
                seqs = tuple(res.waiting_on or ())
                if not seqs:
                    raise ValidationError("waiting_on: a suspended run waits on at least one position", details={})
                items.append(Suspension(res.run_id, res.attempt, worker_id, res.execution, seqs, timers))
                replies.append(None)
            except ValidationError as exc:
                items.append(None)
                replies.append(ResultReply(res.run_id, False, code=exc.code, message=exc.message))
        statuses = iter(self.store.waitpoints.suspend_runs([i for i in items if i is not None], now, telemetry))
        due = [wp.resume_at for item in items if item is not None for _, wp in item.timers if wp.resume_at]
        if due:
            self.core.due(min(due))
        out = []
        for res, item, reply in zip(results, items, replies, strict=True):
            if reply is None and item is not None:
                status = next(statuses)
                reply = (
                    ResultReply(res.run_id, True, status=status.value)
                    if status is not None
                    else ResultReply(
                        res.run_id,
                        False,
                        code="conflict",
                        message=f"run {res.run_id} is not executing attempt {res.attempt} for this worker any "
                        "more; suspension ignored",
                    )
                )
            assert reply is not None
            out.append(reply)
        return out


def required_token(op: Operation) -> str:
    if not op.token_id:
        raise ValidationError(f"token_id: {op.kind} needs the token's id", details={"field": "token_id"})
    return op.token_id


def check_same(entry: JournalEntry, kind: str, name: str) -> None:
    if entry.kind != kind or entry.name != name:
        raise NonDeterminismError(
            f"run {entry.run_id} replayed differently: durable operation #{entry.seq} is {kind} {name!r} now, "
            f"but the run's journal recorded {entry.kind} {entry.name!r} there. Durable operations must happen "
            "in the same order on every execution (see docs/durable-execution.md)",
            details={"seq": entry.seq, "recorded": [entry.kind, entry.name], "called": [kind, name]},
        )


def child_result(run: Run) -> dict[str, Any]:
    ok = run.status == RunStatus.COMPLETED
    error = None
    if not ok:
        error = run.error or {"name": f"Run{run.status.value.title().replace('_', '')}", "message": ""}
        error = {**error, "message": error.get("message") or f"the run ended {run.status.value}"}
    return {
        "id": run.id,
        "task_id": run.task_id,
        "status": run.status.value,
        "ok": ok,
        "output": run.output if ok else None,
        "error": error,
    }


def token_result(wp: Waitpoint) -> dict[str, Any]:
    if wp.status == "COMPLETED":
        return {"ok": True, "output": wp.output, "error": None}
    if wp.status == "TIMED_OUT":
        error = {"name": "WaitpointTimeoutError", "message": f"waitpoint token {wp.id} timed out"}
        return {"ok": False, "output": None, "error": error}
    if wp.status == "CANCELED":
        error = {"name": "WaitpointCanceled", "message": f"waitpoint token {wp.id} was cancelled"}
        return {"ok": False, "output": None, "error": error}
    return {"ok": False, "output": None, "error": None}
