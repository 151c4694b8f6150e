"""The Queues page's actions: pause and resume a queue, override its concurrency limit or reset it,
through the engine's ``queues`` as ``/api/v1/queues/{name}/...`` do.

Each is a form POST (CSRF-checked by ``DashboardRoute``) that carries the queue's name in a field,
since names have slashes (``task/email``), and answers 303 back to the Queues page with one message
saying what changed, or why nothing did: an unknown queue or a limit that is not a whole number is
an error message there, never an error page."""

from __future__ import annotations

import re
from enum import StrEnum

from fastapi import APIRouter, Request, Response

from hightide.core.limits import MAX_INT
from hightide.engine.runs import RunEngine
from hightide.errors import NotFoundError
from hightide.server.dashboard.flash import Flash, acted, back_to
from hightide.server.dashboard.pages import open_environment
from hightide.server.dashboard.render import when
from hightide.server.dashboard.routing import DashboardRoute
from hightide.server.dashboard.session import PageSession, form_fields
from hightide.store.records import Environment, Queue

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

PAGE = "/projects/{project}/env/{env}/queues"
WHOLE_NUMBER = re.compile(r"[0-9]{1,10}")


class QueueAction(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    OVERRIDE = "override"
    RESET = "reset"


class BadLimit(ValueError):
    pass


def parse_limit(text: str) -> int:
    """A limit as typed: a whole number from 0 to ``MAX_INT``."""
    text = text.strip()
    if not text:
        raise BadLimit(f"Type a limit first: a whole number from 0 to {MAX_INT:,}.")
    if not WHOLE_NUMBER.fullmatch(text) or int(text) > MAX_INT:
        shown = text if len(text) <= 40 else text[:39] + "…"
        raise BadLimit(f"{shown!r} is not a limit: type a whole number from 0 to {MAX_INT:,}. Nothing was changed.")
    return int(text)


def _runs(n: int) -> str:
    return f"{n:,} run" if n == 1 else f"{n:,} runs"


def _declared(queue: Queue) -> str:
    if queue.concurrency_limit is None:
        return "its tasks declare none"
    return f"its tasks declare {queue.concurrency_limit:,}"


def act(engine: RunEngine, env: Environment, action: QueueAction, name: str, limit_text: str) -> Flash:
    """Do ``action`` to queue ``name``; what to tell the person who asked."""
    queues = engine.queues
    queue = queues.get(env, name).queue  # an unknown queue: NotFoundError, before anything changes
    if action is QueueAction.PAUSE:
        if queue.paused:  # pausing again would move its "paused since"
            return Flash("ok", f"{name} was already paused (since {when(queue.paused_at)} UTC): nothing changed.")
        queues.pause(env, name)
        return Flash("ok", f"Paused {name}: its queued runs wait until you resume it; runs executing now go on.")
    if action is QueueAction.RESUME:
        if not queue.paused:
            return Flash("ok", f"{name} was not paused: nothing changed.")
        queues.resume(env, name)
        return Flash("ok", f"Resumed {name}: its queued runs start again, as its limit allows.")
    if action is QueueAction.OVERRIDE:
        limit = parse_limit(limit_text)
        queues.override_concurrency_limit(env, name, limit)
        if limit == 0:
            what = "none of its runs start until you raise the limit or reset it"
        else:
            what = f"at most {_runs(limit)} of it execute at once until you reset the limit"
        return Flash("ok", f"Limit of {name} set to {limit:,} ({_declared(queue)}): {what}.")
    if queue.concurrency_limit_override is None:
        return Flash("ok", f"The limit of {name} was not overridden: nothing changed.")
    after = queues.reset_concurrency_limit(env, name).queue
    if after.limit is None:
        back = f"none of its own, only the environment's {env.concurrency_limit:,} applies"
    else:
        back = f"{after.limit:,}, as its tasks declare"
    return Flash("ok", f"Reset the limit of {name}: back to {back}.")


@router.post(PAGE + "/{action}")
async def queue_action(request: Request, project: str, env: str, action: str, signed_in: PageSession) -> Response:
    nav = await open_environment(request, signed_in, project, env, "queues")
    if action not in QueueAction.__members__.values():
        raise NotFoundError(f"the Queues page has no action {action!r}; it has pause, resume, override and reset")
    fields = await form_fields(request)
    name = fields.get("queue", "").strip()
    engine: RunEngine = request.app.state.engine
    page = nav.url("queues")
    if not name:
        return back_to(request, page, Flash("error", "No queue named: use the buttons of a queue's row."))
    return await acted(
        request,
        page,
        lambda: act(engine, nav.env, QueueAction(action), name, fields.get("limit", "")),
        lambda exc: f"Could not {action} {name}: {exc.message}",
        told=(BadLimit,),
    )
