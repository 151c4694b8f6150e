"""What a supervisor has yet to report: its runs' log records and spans, and the outcomes of their
attempts, taken in batches a report may carry (its outbox loop ships them, ``supervisor.py``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hightide.core.protocol import AttemptResult, Execution, LogRecord, ResultReply, Span
from hightide.core.protocol.fields import JSONObject
from hightide.types import MAX_REPORT_RECORDS, MAX_REPORT_RESULTS
from hightide.worker.events import RunEvent


@dataclass(frozen=True)
class Outcome:
    """An attempt's result, with what the supervisor keeps about the attempt for its events (the
    result itself is what the server is told)."""

    result: AttemptResult[JSONObject]
    task_id: str
    duration: float  # seconds, from its start in a slot
    # A failure the worker saw (the runner died, max_duration ran out): if it was final, the run's
    # on_failure and on_complete hooks run in a fresh runner, with this execution.
    crashed: Execution | None = None

    def event(self, reply: ResultReply) -> RunEvent:
        """What to print once the server answered ``reply`` to the result."""
        result = self.result
        status = reply.status or "DISCARDED"
        if result.waiting_on is not None and reply.accepted:
            status = "WAITING"  # even if what it waits for resolved meanwhile and it is queued again
        message = "" if reply.accepted else reply.message or ""
        if not result.ok and result.error:
            err = result.error
            message = message or f"{err.get('name')}: {err.get('message')}"
        return RunEvent("run", self.task_id, result.run_id, result.attempt, status, self.duration, message)


class Outbox:
    def __init__(self) -> None:
        self.logs: list[LogRecord] = []
        self.spans: list[Span] = []
        self.outcomes: list[Outcome] = []
        self.ready = asyncio.Event()  # something to ship

    def add_record(self, record: LogRecord | Span) -> None:
        if isinstance(record, Span):  # shipped with the next report
            self.spans.append(record)
            return
        self.logs.append(record)
        self.ready.set()

    def add(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self.ready.set()

    @property
    def pending(self) -> bool:
        return bool(self.logs or self.spans or self.outcomes)

    def take(self) -> tuple[list[LogRecord], list[Span], list[Outcome]]:
        """The next batch: as much as one report may carry."""
        logs, self.logs = self.logs[:MAX_REPORT_RECORDS], self.logs[MAX_REPORT_RECORDS:]
        spans, self.spans = self.spans[:MAX_REPORT_RECORDS], self.spans[MAX_REPORT_RECORDS:]
        outcomes, self.outcomes = self.outcomes[:MAX_REPORT_RESULTS], self.outcomes[MAX_REPORT_RESULTS:]
        return logs, spans, outcomes
