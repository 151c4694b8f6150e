"""Alerts: webhooks for an environment's events (``run.failed``), and their delivery log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool

from hightide.engine.runs import RunEngine
from hightide.server.auth import CurrentEnv
from hightide.server.errors import responses
from hightide.server.models import CreateAlertBody, Id, Kind, Opaque, PageSize, UpdateAlertBody
from hightide.server.routing import ApiRoute
from hightide.server.serialize import alert_json, delivery_json

router = APIRouter(prefix="/api/v1", tags=["alerts"], route_class=ApiRoute, responses=responses(401, 422, 500))
AlertPath = Annotated[Id, Path(description="the alert's id (alert_...)")]
DeliveryPath = Annotated[Id, Path(description="the delivery's id (adl_...)")]


def _engine(request: Request) -> RunEngine:
    return request.app.state.engine


@router.post(
    "/alerts",
    summary="Create a webhook for events of the environment; the answer holds its signing secret",
    status_code=201,
    responses=responses(413),
)
async def create(body: CreateAlertBody, env: CurrentEnv, request: Request) -> dict[str, Any]:
    alert = await run_in_threadpool(
        _engine(request).alerts.create, env, body.url, body.events, body.description, body.enabled
    )
    return alert_json(alert, secret=True)


@router.get("/alerts", summary="List the environment's webhooks, newest first, with cursor pagination")
async def list_alerts(
    env: CurrentEnv,
    request: Request,
    limit: Annotated[PageSize, Query()] = 50,
    cursor: Annotated[Opaque | None, Query()] = None,
) -> dict[str, Any]:
    found, next_cursor = await run_in_threadpool(_engine(request).alerts.list, env, limit, cursor)
    return {"data": [alert_json(a) for a in found], "next_cursor": next_cursor}


@router.get("/alerts/{alert_id}", summary="Retrieve a webhook with its signing secret", responses=responses(404))
async def retrieve(alert_id: AlertPath, env: CurrentEnv, request: Request) -> dict[str, Any]:
    return alert_json(await run_in_threadpool(_engine(request).alerts.get, env, alert_id), secret=True)


@router.put(
    "/alerts/{alert_id}",
    summary="Change a webhook (what is left out stays); rotate_secret makes a new secret",
    responses=responses(404, 413),
)
async def update(alert_id: AlertPath, body: UpdateAlertBody, env: CurrentEnv, request: Request) -> dict[str, Any]:
    alert = await run_in_threadpool(
        lambda: _engine(request).alerts.update(
            env,
            alert_id,
            url=body.url,
            events=body.events,
            description=body.description,
            enabled=body.enabled,
            rotate_secret=body.rotate_secret,
        )
    )
    return alert_json(alert, secret=body.rotate_secret)


@router.delete("/alerts/{alert_id}", summary="Delete a webhook and its delivery log", responses=responses(404))
async def delete(alert_id: AlertPath, env: CurrentEnv, request: Request) -> dict[str, Any]:
    await run_in_threadpool(_engine(request).alerts.delete, env, alert_id)
    return {"id": alert_id, "deleted": True}


@router.post(
    "/alerts/{alert_id}/test",
    summary="Send an alert.test event to the webhook now (also while it is disabled)",
    status_code=202,
    responses=responses(404),
)
async def test(alert_id: AlertPath, env: CurrentEnv, request: Request) -> dict[str, Any]:
    return delivery_json(await run_in_threadpool(_engine(request).alerts.test, env, alert_id))


@router.get(
    "/alerts/{alert_id}/deliveries",
    summary="The webhook's deliveries with their tries, newest first",
    responses=responses(404),
)
async def deliveries(
    alert_id: AlertPath,
    env: CurrentEnv,
    request: Request,
    status: Annotated[Kind | None, Query(description="PENDING, DELIVERED or FAILED")] = None,
    limit: Annotated[PageSize, Query()] = 50,
    cursor: Annotated[Opaque | None, Query()] = None,
) -> dict[str, Any]:
    found, next_cursor = await run_in_threadpool(
        _engine(request).alerts.deliveries, env, alert_id, limit, cursor, status
    )
    return {"data": [delivery_json(d) for d in found], "next_cursor": next_cursor}


@router.get(
    "/alerts/{alert_id}/deliveries/{delivery_id}",
    summary="A delivery with its tries and the event it sends",
    responses=responses(404),
)
async def delivery(alert_id: AlertPath, delivery_id: DeliveryPath, env: CurrentEnv, request: Request) -> dict[str, Any]:
    found = await run_in_threadpool(_engine(request).alerts.delivery, env, alert_id, delivery_id)
    return delivery_json(found, body=True)


@router.post(
    "/alerts/{alert_id}/deliveries/{delivery_id}/redeliver",
    summary="Send a delivery again now, with the same body and a fresh set of tries",
    status_code=202,
    responses=responses(404),
)
async def redeliver(
    alert_id: AlertPath, delivery_id: DeliveryPath, env: CurrentEnv, request: Request
) -> dict[str, Any]:
    return delivery_json(await run_in_threadpool(_engine(request).alerts.redeliver, env, alert_id, delivery_id))
