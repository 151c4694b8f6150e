"""The Alerts page: the environment's webhooks for failed runs, each with its latest deliveries (how
each try went, when the next one comes); create one with a form, send a test event, enable, disable,
delete (after confirming), and send a delivery again.

Actions go through the engine's ``alerts`` as ``/api/v1/alerts/...`` do. Each is a form POST
(CSRF-checked by ``DashboardRoute``) answering 303 back to the page with one message; a create that
the engine refuses shows the page again with the form as typed and the reason."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import StrEnum

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from hightide.core.alerts import EVENTS, RUN_FAILED
from hightide.engine.runs import RunEngine
from hightide.errors import HightideError, NotFoundError
from hightide.server.dashboard.flash import Flash, acted, back_to, clear_flash, read_flash
from hightide.server.dashboard.pages import Nav, open_environment
from hightide.server.dashboard.render import render
from hightide.server.dashboard.routing import DashboardRoute
from hightide.server.dashboard.session import PageSession, form_fields
from hightide.server.dashboard.tokens import until
from hightide.server.errors import HTTP_STATUS
from hightide.store.alerts import Alert, Delivery
from hightide.store.records import Environment

router = APIRouter(route_class=DashboardRoute, include_in_schema=False)

PAGE = "/projects/{project}/env/{env}/alerts"
ALERTS_PAGE_SIZE = 50
DELIVERIES_SHOWN = 5


class AlertAction(StrEnum):
    TEST = "test"
    ENABLE = "enable"
    DISABLE = "disable"
    DELETE = "delete"
    REDELIVER = "redeliver"


@dataclass(frozen=True)
class Webhook:
    """An alert with its latest deliveries, newest first."""

    alert: Alert
    deliveries: list[Delivery]


@dataclass(frozen=True)
class Draft:
    """A webhook being created, as typed (kept when the engine refuses it, with why)."""

    url: str = ""
    description: str = ""
    error: str = ""


def act(engine: RunEngine, env: Environment, action: AlertAction, alert_id: str, delivery_id: str) -> Flash:
    """Do ``action`` to the webhook (or its delivery); what to tell the person who asked."""
    alert = engine.alerts.get(env, alert_id)  # unknown: NotFoundError, before anything changes
    if action is AlertAction.TEST:
        engine.alerts.test(env, alert_id)
        return Flash("ok", f"Sent an alert.test event to {alert.url}: its delivery shows below in a moment.")
    if action in (AlertAction.ENABLE, AlertAction.DISABLE):
        enabled = action is AlertAction.ENABLE
        if alert.enabled == enabled:
            return Flash("ok", f"The webhook {alert.url} was already {action.value}d: nothing changed.")
        engine.alerts.update(env, alert_id, enabled=enabled)
        said = "it gets failed runs again" if enabled else "failed runs from now on are not sent to it"
        return Flash("ok", f"{action.value.title()}d the webhook {alert.url}: {said}.")
    if action is AlertAction.REDELIVER:
        engine.alerts.redeliver(env, alert_id, delivery_id)
        return Flash("ok", f"Sending {delivery_id} again to {alert.url}, with the same body.")
    engine.alerts.delete(env, alert_id)
    return Flash("ok", f"Deleted the webhook {alert.url} and its delivery log.")


async def _page(
    request: Request,
    signed_in: object,
    nav: Nav,
    cursor: str | None,
    draft: Draft | None = None,
    status_code: int = 200,
) -> Response:
    engine: RunEngine = request.app.state.engine

    def load() -> tuple[list[Webhook], str | None]:
        found, next_cursor = engine.alerts.list(nav.env, ALERTS_PAGE_SIZE, cursor)
        hooks = [Webhook(a, engine.alerts.deliveries(nav.env, a.id, DELIVERIES_SHOWN)[0]) for a in found]
        return hooks, next_cursor

    hooks, next_cursor = await run_in_threadpool(load)
    base = nav.url("alerts")
    notice = None if draft is not None else read_flash(request)
    response = render(
        request,
        "alerts.html",
        status_code,
        signed_in=signed_in,
        nav=nav,
        hooks=hooks,
        events=EVENTS,
        draft=draft or Draft(),
        notice=notice,
        first_page=cursor is None,
        newest_url=base,
        next_url=f"{base}?cursor={next_cursor}" if next_cursor else None,
        until=functools.partial(until, now=engine.clock()),
    )
    if notice is not None:
        clear_flash(request, response, base)
    return response


@router.get(PAGE)
async def alerts_page(
    request: Request, project: str, env: str, signed_in: PageSession, cursor: str | None = None
) -> Response:
    nav = await open_environment(request, signed_in, project, env, "alerts")
    return await _page(request, signed_in, nav, cursor or None)


@router.post(PAGE + "/create")
async def create_alert(request: Request, project: str, env: str, signed_in: PageSession) -> Response:
    nav = await open_environment(request, signed_in, project, env, "alerts")
    engine: RunEngine = request.app.state.engine
    fields = await form_fields(request)
    draft = Draft(url=fields.get("url", "").strip(), description=fields.get("description", "").strip())
    try:
        alert = await run_in_threadpool(
            engine.alerts.create, nav.env, draft.url, [RUN_FAILED], draft.description or None
        )
    except HightideError as exc:
        if exc.code == "server_error":
            raise
        failed = Draft(draft.url, draft.description, exc.message)
        return await _page(request, signed_in, nav, None, failed, HTTP_STATUS.get(exc.code, 422))
    message = Flash("ok", f"Created the webhook {alert.url}: failed runs are POSTed to it, signed with its secret.")
    return back_to(request, nav.url("alerts"), message)


@router.post(PAGE + "/{action}")
async def alert_action(request: Request, project: str, env: str, action: str, signed_in: PageSession) -> Response:
    nav = await open_environment(request, signed_in, project, env, "alerts")
    if action not in AlertAction.__members__.values():
        raise NotFoundError(
            f"the Alerts page has no action {action!r}; it has {', '.join(a.value for a in AlertAction)}"
        )
    fields = await form_fields(request)
    alert_id = fields.get("alert", "").strip()
    delivery_id = fields.get("delivery", "").strip()
    engine: RunEngine = request.app.state.engine
    page = nav.url("alerts")
    if not alert_id or (action == AlertAction.REDELIVER and not delivery_id):
        return back_to(request, page, Flash("error", "No webhook named: use the buttons of a webhook."))
    return await acted(
        request,
        page,
        lambda: act(engine, nav.env, AlertAction(action), alert_id, delivery_id),
        lambda exc: f"Could not {action} {delivery_id or alert_id}: {exc.message}",
    )
