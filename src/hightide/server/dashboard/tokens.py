"""The Tokens page: waitpoint tokens newest first, filtered by status and tag, paged by cursor; a
waiting token can be completed with a JSON body, after which the runs waiting on it continue."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from hightide.engine.runs import RunEngine
from hightide.engine.tokens import TOKEN_STATUSES
from hightide.errors import HightideError
from hightide.server.dashboard.jsonfield import read_json
from hightide.server.dashboard.pages import Nav, open_environment
from hightide.server.dashboard.render import render
from hightide.server.dashboard.routing import DashboardRoute
from hightide.server.dashboard.session import PageSession, form_fields
from hightide.server.errors import HTTP_STATUS
from hightide.store.records import Waitpoint

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

TOKENS_PAGE_SIZE = 50
OUTPUT_SHOWN = 2000  # characters of a completed token's output shown in the list


@dataclass(frozen=True)
class TokenView:
    token: Waitpoint
    waiting: list[str]  # the runs suspended on it now

    @property
    def id(self) -> str:
        return self.token.id

    @property
    def runs(self) -> list[tuple[str, str]]:
        """(run id, how it relates): the runs waiting on it, else the run that created it."""
        if self.waiting:
            return [(run_id, "waiting") for run_id in self.waiting]
        if self.token.owner_run_id:
            return [(self.token.owner_run_id, "created by")]
        return []

    @property
    def output(self) -> str:
        if self.token.status != "COMPLETED":
            return ""
        text = json.dumps(self.token.output, indent=2, ensure_ascii=False)
        return text if len(text) <= OUTPUT_SHOWN else text[:OUTPUT_SHOWN] + "\n..."


@dataclass
class Completion:
    """A completion that did not happen: which token, the body as typed, and why."""

    token_id: str
    data: str
    error: str


def until(ts: float, now: float) -> str:
    """``in 5m``, ``in 3h``; ``due now`` once it passed (the scheduler times it out shortly)."""
    left = ts - now
    if left <= 0:
        return "due now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if left >= size:
            return f"in {int(left // size)}{unit}"
    return f"in {int(left)}s"


def _filters(status: str, tag: str) -> dict[str, str]:
    kept = {"status": status if status in TOKEN_STATUSES else "", "tag": tag.strip()}
    return {name: value for name, value in kept.items() if value}


async def _tokens_page(
    request: Request,
    signed_in: object,
    nav: Nav,
    status: str,
    tag: str,
    cursor: str | None,
    completed: str = "",
    failed: Completion | None = None,
    status_code: int = 200,
) -> Response:
    engine: RunEngine = request.app.state.engine
    kept = _filters(status, tag)

    def load() -> tuple[list[TokenView], str | None]:
        statuses = (kept["status"],) if "status" in kept else ()
        tokens, next_cursor = engine.tokens.list_tokens(nav.env, statuses, kept.get("tag"), TOKENS_PAGE_SIZE, cursor)
        waiting = engine.store.waitpoints.waiting_runs_of([t.id for t in tokens if t.status == "WAITING"])
        return [TokenView(t, waiting.get(t.id, [])) for t in tokens], next_cursor

    tokens, next_cursor = await run_in_threadpool(load)
    base = nav.url("tokens")
    return render(
        request,
        "tokens.html",
        status_code,
        signed_in=signed_in,
        nav=nav,
        tokens=tokens,
        next_cursor=next_cursor,
        first_page=cursor is None,
        filters={"status": kept.get("status", ""), "tag": kept.get("tag", "")},
        filtered=bool(kept),
        cursor=cursor or "",
        statuses=TOKEN_STATUSES,
        newest_url=f"{base}?{urlencode(kept)}" if kept else base,
        next_url=f"{base}?{urlencode({**kept, 'cursor': next_cursor})}" if next_cursor else None,
        completed=completed,
        failed=failed,
        failed_in_row=failed is not None
        and any(t.id == failed.token_id and t.token.status == "WAITING" for t in tokens),
        until=functools.partial(until, now=engine.clock()),
    )


@router.get("/projects/{project}/env/{env}/tokens")
async def tokens_page(
    request: Request,
    project: str,
    env: str,
    signed_in: PageSession,
    status: str = "",
    tag: str = "",
    cursor: str | None = None,
    completed: str = "",
) -> Response:
    nav = await open_environment(request, signed_in, project, env, "tokens")
    if completed:  # the message says only what is true: that token of this environment is completed
        completed = completed if await run_in_threadpool(_is_completed, request, nav, completed) else ""
    return await _tokens_page(request, signed_in, nav, status, tag, cursor or None, completed=completed)


def _is_completed(request: Request, nav: Nav, token_id: str) -> bool:
    engine: RunEngine = request.app.state.engine
    try:
        return engine.tokens.get_token(nav.env, token_id).status == "COMPLETED"
    except HightideError:  # not found, or not a token id at all
        return False


@router.post("/projects/{project}/env/{env}/tokens/{token_id}/complete")
async def complete_token(request: Request, project: str, env: str, token_id: str, signed_in: PageSession) -> Response:
    """Complete a waiting token with the JSON typed in its form (as ``POST
    /api/v1/waitpoints/tokens/{id}/complete`` does); the page again, with the reason, if it cannot be."""
    nav = await open_environment(request, signed_in, project, env, "tokens")
    engine: RunEngine = request.app.state.engine
    fields = await form_fields(request)
    data = fields.get("data", "")
    status, tag, cursor = fields.get("status", ""), fields.get("tag", ""), fields.get("cursor", "") or None

    def complete() -> None:
        engine.tokens.complete_token(nav.env, token_id, read_json(data, "data"))

    try:
        await run_in_threadpool(complete)
    except HightideError as exc:
        if exc.code == "server_error":
            raise
        failed = Completion(token_id, data, exc.message)
        code = HTTP_STATUS.get(exc.code, 422)
        return await _tokens_page(request, signed_in, nav, status, tag, cursor, failed=failed, status_code=code)
    query = urlencode({**_filters(status, tag), **({"cursor": cursor} if cursor else {}), "completed": token_id})
    return RedirectResponse(f"{nav.url('tokens')}?{query}", status_code=303)
