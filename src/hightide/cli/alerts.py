"""``hightide alerts ...``: webhooks for an environment's events (``run.failed``) and their deliveries."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from hightide.cli.options import ApiUrl, JsonOut, SecretKey, any_case, call, every_page, print_json, request
from hightide.cli.output import console
from hightide.cli.render import last_try, print_alerts, print_deliveries

alerts_app = typer.Typer(
    help="Webhooks for failed runs: create, list, test, enable, disable and delete them; read their deliveries.",
    no_args_is_help=True,
)
AlertId = Annotated[str, typer.Argument(help="The alert's id (alert_...).")]
DeliveryId = Annotated[str, typer.Argument(help="The delivery's id (adl_...).")]


def _path(alert_id: str, action: str | None = None) -> str:
    from hightide.sdk.alerts_client import alert_path

    return alert_path(alert_id, action)


def _print_alert(alert: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(alert)
        return
    state = "enabled" if alert["enabled"] else "disabled"
    console.print(f"{alert['id']}  {alert['url']}  {', '.join(alert['events'])}  {state}", markup=False, soft_wrap=True)
    if alert.get("secret"):
        console.print(f"signing secret: [bold]{escape(alert['secret'])}[/]  (check Hightide-Signature with it)")


def _print_delivery(delivery: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(delivery)
        return
    tried = f"  last try: {last_try(delivery)}" if delivery.get("log") else ""
    console.print(
        f"{delivery['id']}  {delivery['event']}  {delivery['status']}  tries {delivery['tries']}{tried}",
        markup=False,
        soft_wrap=True,
    )


@alerts_app.command("list")
def alerts_list(as_json: JsonOut = False, api_url: ApiUrl = None, secret_key: SecretKey = None) -> None:
    """Every webhook of the environment, newest first."""
    found = every_page("/api/v1/alerts", {}, api_url, secret_key)
    print_json(found) if as_json else print_alerts(console, found)


@alerts_app.command("create")
def alerts_create(
    url: Annotated[
        str, typer.Option("--url", help="Where each event is POSTed (http or https).", envvar="HIGHTIDE_ALERT_URL")
    ],
    event: Annotated[
        list[str] | None,
        typer.Option(
            "--event", help="An event to send (repeatable); default run.failed.", envvar="HIGHTIDE_ALERT_EVENTS"
        ),
    ] = None,
    description: Annotated[
        str | None, typer.Option("--description", help="What the webhook is for.", envvar="HIGHTIDE_ALERT_DESCRIPTION")
    ] = None,
    disabled: Annotated[
        bool, typer.Option("--disabled", help="Create it disabled.", envvar="HIGHTIDE_ALERT_DISABLED")
    ] = False,
    as_json: JsonOut = False,
    api_url: ApiUrl = None,
    secret_key: SecretKey = None,
) -> None:
    """Create a webhook; prints its signing secret."""
    body = {"url": url, "events": event or ["run.failed"], "description": description, "enabled": not disabled}
    _print_alert(request("POST", "/api/v1/alerts", api_url, secret_key, body), as_json)


@alerts_app.command("get")
def alerts_get(
    alert_id: AlertId, as_json: JsonOut = False, api_url: ApiUrl = None, secret_key: SecretKey = None
) -> None:
    """A webhook with its signing secret."""
    _print_alert(request("GET", _path(alert_id), api_url, secret_key), as_json)


@alerts_app.command("enable")
def alerts_enable(
    alert_id: AlertId, as_json: JsonOut = False, api_url: ApiUrl = None, secret_key: SecretKey = None
) -> None:
    """Send the webhook its events again."""
    _print_alert(request("PUT", _path(alert_id), api_url, secret_key, {"enabled": True}), as_json)


@alerts_app.command("disable")
def alerts_disable(
    alert_id: AlertId, as_json: JsonOut = False, api_url: ApiUrl = None, secret_key: SecretKey = None
) -> None:
    """Stop sending the webhook events (those that happen meanwhile are not sent later)."""
    _print_alert(request("PUT", _path(alert_id), api_url, secret_key, {"enabled": False}), as_json)


@alerts_app.command("delete")
def alerts_delete(
    alert_id: AlertId, as_json: JsonOut = False, api_url: ApiUrl = None, secret_key: SecretKey = None
) -> None:
    """Delete a webhook and its delivery log."""
    done = request("DELETE", _path(alert_id), api_url, secret_key)
    print_json(done) if as_json else console.print(f"deleted {alert_id}", markup=False)


@alerts_app.command("test")
def alerts_test(
    alert_id: AlertId, as_json: JsonOut = False, api_url: ApiUrl = None, secret_key: SecretKey = None
) -> None:
    """Send an alert.test event now; `hightide alerts deliveries ID` shows how it went."""
    _print_delivery(request("POST", _path(alert_id, "test"), api_url, secret_key), as_json)


@alerts_app.command("deliveries")
def alerts_deliveries(
    alert_id: AlertId,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="PENDING, DELIVERED or FAILED (any case).",
            envvar="HIGHTIDE_DELIVERY_STATUS",
            callback=any_case,
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=1000, help="How many, newest first.", envvar="HIGHTIDE_DELIVERY_LIMIT")
    ] = 50,
    as_json: JsonOut = False,
    api_url: ApiUrl = None,
    secret_key: SecretKey = None,
) -> None:
    """The webhook's latest deliveries: each event, its status, tries and how the last one went."""
    params: dict[str, Any] = {"limit": limit, **({"status": status} if status else {})}
    page = call(api_url, secret_key, lambda c: c.session.request("GET", _path(alert_id, "deliveries"), params=params))
    print_json(page["data"]) if as_json else print_deliveries(console, page["data"])


@alerts_app.command("redeliver")
def alerts_redeliver(
    alert_id: AlertId,
    delivery_id: DeliveryId,
    as_json: JsonOut = False,
    api_url: ApiUrl = None,
    secret_key: SecretKey = None,
) -> None:
    """Send a delivery again now, with the same body."""
    _print_delivery(
        request("POST", _path(alert_id, f"deliveries/{delivery_id}/redeliver"), api_url, secret_key), as_json
    )
