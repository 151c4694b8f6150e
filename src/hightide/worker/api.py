"""The worker protocol, client side (see ``server/routes_worker.py``)."""

from __future__ import annotations

from typing import Any

from hightide.sdk.http import ApiSession


class WorkerApi:
    def __init__(self, session: ApiSession, worker_id: str) -> None:
        self.session = session
        self.worker_id = worker_id

    async def register(self, manifest: dict[str, Any]) -> dict[str, Any]:
        return await self.session.request(
            "POST", "/api/v1/worker/register", json={"manifest": manifest, "worker_id": self.worker_id}
        )

    async def claim(self, version_id: str, max_runs: int, wait: float, claim_id: str) -> list[dict[str, Any]]:
        """Claim up to ``max_runs`` runs. Send each try of one claim with the same ``claim_id``: a try
        gets what an earlier one took; ``release(claims=[claim_id])`` gives back a claim let go."""
        body = {
            "worker_id": self.worker_id,
            "version_id": version_id,
            "max_runs": max_runs,
            "wait": wait,
            "claim_id": claim_id,
        }
        data = await self.session.request("POST", "/api/v1/worker/claim", json=body, timeout=wait + 30)
        return data["runs"]

    async def release(self, runs: list[dict[str, Any]], claims: list[str]) -> list[str]:
        """Give back, unfinished, ``runs`` (``run_id``, ``attempt``, ``execution``) and the runs of the
        claims ``claims``: they are queued again at once, with no attempt used. Returns the ids of
        the runs released (not those that had moved on)."""
        body = {"worker_id": self.worker_id, "runs": runs, "claims": claims}
        data = await self.session.request("POST", "/api/v1/worker/release", json=body)
        return data["released"]

    async def heartbeat(self, held: list[tuple[str, int]], wait: float, extend: bool) -> list[str]:
        body = {
            "worker_id": self.worker_id,
            "runs": [{"run_id": r, "attempt": a} for r, a in held],
            "wait": wait,
            "extend": extend,
        }
        data = await self.session.request("POST", "/api/v1/worker/heartbeat", json=body, timeout=wait + 30)
        return data["stop"]

    async def complete(
        self,
        results: list[dict[str, Any]],
        logs: list[dict[str, Any]],
        spans: list[dict[str, Any]],
        claim: dict[str, Any] | None,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Report results (after their logs and spans); with ``claim``, get more runs back. Returns
        the replies to the results and the claimed executions."""
        body: dict[str, Any] = {"worker_id": self.worker_id, "results": results, "logs": logs, "spans": spans}
        if claim:
            body["claim"] = claim
        data = await self.session.request("POST", "/api/v1/worker/complete", json=body)
        return data["results"], data["runs"]

    async def cancel(self, run_id: str) -> None:
        await self.session.request("POST", f"/api/v1/runs/{run_id}/cancel")
