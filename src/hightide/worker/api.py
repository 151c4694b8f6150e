"""The worker API, client side (see ``server/routes_worker.py``): the messages of
``core/protocol/worker_api.py`` over HTTP."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hightide.core.protocol import (
    AttemptResult,
    Claimed,
    ClaimMore,
    ClaimRequest,
    CompleteReply,
    CompleteRequest,
    Execution,
    HeartbeatReply,
    HeartbeatRequest,
    HeldRun,
    HooksDoneReply,
    HooksDoneRequest,
    LogRecord,
    OwedHooks,
    OwedHooksReply,
    OwedHooksRequest,
    Registered,
    RegisterRequest,
    ReleasedRun,
    ReleaseReply,
    ReleaseRequest,
    Span,
    from_json,
    to_json,
)
from hightide.core.protocol.fields import JSONObject
from hightide.sdk.http import ApiSession


class WorkerApi:
    def __init__(self, session: ApiSession, worker_id: str) -> None:
        self.session = session
        self.worker_id = worker_id

    async def register(self, manifest: dict[str, Any]) -> Registered:
        body = RegisterRequest(manifest, self.worker_id)
        return from_json(Registered, await self._post("register", body))

    async def claim(self, version_id: str, max_runs: int, wait: float, claim_id: str) -> tuple[Execution, ...]:
        """Claim up to ``max_runs`` runs. Send each try of one claim with the same ``claim_id``: a try
        gets what an earlier one took; ``release(claims=[claim_id])`` gives back a claim let go."""
        body = ClaimRequest(self.worker_id, version_id, max_runs, wait, claim_id)
        return from_json(Claimed, await self._post("claim", body, timeout=wait + 30)).runs

    async def release(self, runs: Sequence[ReleasedRun], claims: Sequence[str]) -> tuple[str, ...]:
        """Give back, unfinished, ``runs`` and the runs of the claims ``claims``: they are queued
        again at once, with no attempt used. Returns the ids of the runs released (not those that
        had moved on)."""
        body = ReleaseRequest(self.worker_id, tuple(runs), tuple(claims))
        return from_json(ReleaseReply, await self._post("release", body)).released

    async def heartbeat(self, held: Sequence[tuple[str, int]], wait: float, extend: bool) -> tuple[str, ...]:
        body = HeartbeatRequest(self.worker_id, tuple(HeldRun(r, a) for r, a in held), wait, extend)
        return from_json(HeartbeatReply, await self._post("heartbeat", body, timeout=wait + 30)).stop

    async def complete(
        self,
        results: Sequence[AttemptResult[JSONObject]],
        logs: Sequence[LogRecord],
        spans: Sequence[Span],
        claim: ClaimMore | None,
    ) -> CompleteReply:
        """Report results (after their logs and spans); with ``claim``, get more runs back: the
        replies to the results, and the claimed executions."""
        body = CompleteRequest(self.worker_id, tuple(results), tuple(logs), tuple(spans), claim)
        return from_json(CompleteReply, await self._post("complete", body))

    async def owed_hooks(self, version_id: str, max_runs: int) -> tuple[OwedHooks, ...]:
        """The final hooks owed to crashed runs this worker can run, leased to it for a minute."""
        body = OwedHooksRequest(self.worker_id, version_id, max_runs)
        return from_json(OwedHooksReply, await self._post("hooks", body)).hooks

    async def hooks_done(self, run_ids: Sequence[str]) -> tuple[str, ...]:
        body = HooksDoneRequest(self.worker_id, tuple(run_ids))
        return from_json(HooksDoneReply, await self._post("hooks/done", body)).done

    async def cancel(self, run_id: str) -> None:
        await self.session.request("POST", f"/api/v1/runs/{run_id}/cancel")

    async def _post(self, operation: str, body: Any, timeout: float | None = None) -> Any:
        return await self.session.request("POST", f"/api/v1/worker/{operation}", json=to_json(body), timeout=timeout)
