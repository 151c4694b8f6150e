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

    async def claim(self, version_id: str, max_runs: int, wait: float) -> list[dict[str, Any]]:
        body = {"worker_id": self.worker_id, "version_id": version_id, "max_runs": max_runs, "wait": wait}
        data = await self.session.request("POST", "/api/v1/worker/claim", json=body, timeout=wait + 30)
        return data["runs"]

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
