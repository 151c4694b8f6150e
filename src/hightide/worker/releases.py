"""Giving runs back: what a stopping worker releases, and the claims whose answer it never took."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence

from hightide.core.protocol import Execution, ReleasedRun
from hightide.errors import TRANSIENT_ERRORS, HightideError
from hightide.types import MAX_RELEASE_CLAIMS, MAX_RELEASE_RUNS
from hightide.worker.api import WorkerApi
from hightide.worker.events import EventSink, RunEvent

log = logging.getLogger(__name__)


class Releaser:
    """Releases runs in the background (``give_back``), and keeps the ids of the claims sent whose
    answer was not taken: a claim tried again keeps its id, so the server answers it once, and a
    claim let go (a long-poll abandoned at shutdown) is released by its id, runs and all."""

    def __init__(self, api: WorkerApi, on_event: EventSink) -> None:
        self.api = api
        self.on_event = on_event
        self._open: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def open_claim(self) -> str:
        """A new claim id, open until ``answered``."""
        claim_id = uuid.uuid4().hex
        self._open.add(claim_id)
        return claim_id

    def answered(self, claim_id: str) -> None:
        self._open.discard(claim_id)

    def take_open_claims(self) -> list[str]:
        claims, self._open = sorted(self._open), set()
        return claims

    def give_back(self, executions: Sequence[Execution], claims: list[str] | None = None, started: bool = True) -> None:
        """Release ``executions`` and the runs of ``claims``, at once, in the background. ``started``
        false: the executions never started (prefetched), so the server may undo their claim."""
        if not executions and not claims:
            return
        task = asyncio.create_task(self._release(executions, claims or [], started), name="release")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the releases under way."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def _release(self, executions: Sequence[Execution], claims: list[str], started: bool) -> None:
        held = [ReleasedRun(e.run_id, e.attempt, e.execution, started) for e in executions]
        released: set[str] = set()
        # As many requests as the server's limits need: one refused must not hold back the others.
        requests = max(-(-len(held) // MAX_RELEASE_RUNS), -(-len(claims) // MAX_RELEASE_CLAIMS))
        for k in range(requests):
            runs, ids = (
                held[k * MAX_RELEASE_RUNS :][:MAX_RELEASE_RUNS],
                claims[k * MAX_RELEASE_CLAIMS :][:MAX_RELEASE_CLAIMS],
            )
            released |= await self._release_one(runs, ids)
        for e in executions:
            if e.run_id in released:
                self.on_event(RunEvent("run", e.task_id, e.run_id, e.attempt, "RELEASED", None, "back in the queue"))

    async def _release_one(self, held: list[ReleasedRun], claims: list[str]) -> set[str]:
        """One release request, tried again while the server cannot be reached; the runs released.
        Runs not given back are not lost: their leases lapse, and they are retried then."""
        if not held and not claims:
            return set()
        delay = 0.25
        for tries in range(5):
            try:
                return set(await self.api.release(held, claims))
            except HightideError as exc:
                if tries == 4 or not isinstance(exc, TRANSIENT_ERRORS):
                    log.warning("could not give back %d run(s) and %d claim(s): %s", len(held), len(claims), exc)
                    return set()
                await asyncio.sleep(delay)
                delay *= 2
        return set()
