"""``AsyncClient``: the SDK's one way to talk to the API. Module-level helpers use a default one."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from hightide.config import client_settings
from hightide.core.machines import check_machine
from hightide.core.options import TRIGGER_OPTIONS, OptionKind
from hightide.sdk import realtime
from hightide.sdk.alerts_client import AlertsClient
from hightide.sdk.bulk import BulkClient, run_filter
from hightide.sdk.http import ApiSession
from hightide.sdk.models import BatchHandle, LogRecord, QueueInfo, Run, RunHandle, ScheduleInfo, Token, _time

Duration = str | float | int | timedelta


def _options(options: dict[str, Any], field: str = "options") -> dict[str, Any]:
    """Trigger options as JSON: drop unset ones, durations as seconds, datetimes as ISO 8601. An unknown
    ``machine`` is refused here, before anything is sent (the server refuses it too)."""
    if options.get("machine") is not None:
        check_machine(options["machine"], f"{field}.machine")
    out: dict[str, Any] = {}
    for key, value in options.items():
        if value is None:
            continue
        if isinstance(value, timedelta):
            value = value.total_seconds()
        elif isinstance(value, dict) and key == "debounce":  # its delays may be timedeltas too
            value = {k: v.total_seconds() if isinstance(v, timedelta) else v for k, v in value.items()}
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, tuple | set):
            value = list(value)
        out[key] = value
    return out


_TAG_OPTIONS = tuple(o.sent_as for o in TRIGGER_OPTIONS if o.how.kind is OptionKind.TAGS)


def trigger_item(task: str | None, payload: Any, options: Mapping[str, Any], field: str = "options") -> dict[str, Any]:
    """One run to trigger as the API takes it: ``{"task"?, "payload", "options"}``, the options (see
    ``core/options.py``) as JSON, with one string for tags taken as one tag. Options the server does
    not know are sent as given: it refuses them, naming them."""
    body = _options(dict(options), field)
    for name in _TAG_OPTIONS:
        if isinstance(body.get(name), str):
            body[name] = [body[name]]
    return {**({"task": task} if task else {}), "payload": payload, "options": body}


class RunsClient:
    def __init__(self, session: ApiSession) -> None:
        self._session = session
        self.bulk = BulkClient(session)

    async def retrieve(self, run_id: str) -> Run:
        """The run with its attempts. Raises ``NotFoundError`` for an unknown id."""
        return Run.from_json(await self._session.request("GET", f"/api/v1/runs/{run_id}"))

    async def list(
        self,
        *,
        status: str | Sequence[str] | None = None,
        task: str | Sequence[str] | None = None,
        tag: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        page_size: int = 100,
        limit: int | None = None,
    ) -> AsyncIterator[Run]:
        """Newest first, following pages as you iterate. ``limit`` stops after that many runs.

        >>> async for run in runs.list(status=["FAILED"], task="parent-task"): ...
        """
        params: dict[str, Any] = {"limit": page_size, **run_filter(status, task, tag, None, created_from, created_to)}
        seen = 0
        while True:
            page = await self._session.request("GET", "/api/v1/runs", params=params)
            for data in page["data"]:
                yield Run.from_json(data)
                seen += 1
                if limit is not None and seen >= limit:
                    return
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    async def cancel(self, run_id: str) -> Run:
        """Cancel a run that has not finished (and its unfinished children)."""
        return Run.from_json(await self._session.request("POST", f"/api/v1/runs/{run_id}/cancel"))

    async def replay(self, run_id: str) -> RunHandle[Any]:
        """A new run with the same payload, on the current version."""
        data = await self._session.request("POST", f"/api/v1/runs/{run_id}/replay")
        return _handle(data)

    async def reschedule(self, run_id: str, *, delay: Duration | datetime) -> Run:
        body = _options({"delay": delay})
        return Run.from_json(await self._session.request("POST", f"/api/v1/runs/{run_id}/reschedule", json=body))

    def subscribe(self, run_id: str, *, reconnect: realtime.Reconnect | None = None) -> AsyncIterator[Run]:
        """The run now, then each time it changes (status, metadata, tags), until it finishes.
        Reconnects and resumes by itself; a state may be skipped, the latest never is.

        >>> async for run in runs.subscribe(handle.id):
        ...     print(run.status, run.metadata.get("progress"))
        """
        path = f"/realtime/v1/runs/{run_id}"
        return realtime.subscribe(self._session, path, until_finished=True, reconnect=reconnect)

    def subscribe_to_tag(
        self, tag: str, *, limit: int = 50, reconnect: realtime.Reconnect | None = None
    ) -> AsyncIterator[Run]:
        """The ``limit`` newest runs tagged ``tag``, then every change of a run with it (new runs
        included). Never ends by itself: break out of the loop.

        >>> async for run in runs.subscribe_to_tag("user:42"): ...
        """
        params = {"tag": tag, "limit": limit}
        return realtime.subscribe(self._session, "/realtime/v1/runs", params, reconnect=reconnect)

    async def poll(self, run_id: str, *, interval: float = 0.5, timeout: float | None = None) -> Run:
        """Return the run once it is finished. ``timeout`` (seconds) raises ``TimeoutError``."""
        async with asyncio.timeout(timeout):
            while True:
                run = await self.retrieve(run_id)
                if run.is_finished:
                    return run
                await asyncio.sleep(interval)

    async def update_metadata(self, run_id: str, metadata: dict[str, Any]) -> dict[str, Any]:
        """Replace the run's metadata (at most 256 KB as JSON); returns it as stored. Refused with
        ``ConflictError`` for a run that finished more than an hour ago."""
        path = f"/api/v1/runs/{run_id}/metadata"
        answer = await self._session.request("PUT", path, json={"metadata": metadata})
        return dict(answer["metadata"])

    async def logs(self, run_id: str) -> builtins.list[LogRecord]:
        """The log records of a run (``logger`` calls, ``print`` and ``logging`` inside the task)."""
        records: list[LogRecord] = []
        after = 0
        while True:
            page = await self._session.request("GET", f"/api/v1/runs/{run_id}/logs", params={"after": after})
            for d in page["data"]:
                records.append(
                    LogRecord(
                        _time(d["time"]), d["level"], d["message"], d["attempt"], d["attributes"], d.get("span_id")
                    )
                )
                after = d["id"]
            if len(page["data"]) < 1000:
                return records


class WaitpointsClient:
    """Waitpoint tokens from anywhere (``wait.*`` calls these outside a task)."""

    def __init__(self, session: ApiSession) -> None:
        self._session = session

    async def create_token(
        self,
        *,
        timeout: Duration | None = None,
        tags: Iterable[str] | str | None = None,
        idempotency_key: str | None = None,
        idempotency_key_ttl: Duration | None = None,
    ) -> Token:
        body = _options({k: v for k, v in locals().items() if k != "self"})
        if isinstance(body.get("tags"), str):
            body["tags"] = [body["tags"]]
        return Token.from_json(await self._session.request("POST", "/api/v1/waitpoints/tokens", json=body))

    async def complete_token(self, token_id: str, data: Any = None) -> Token:
        path = f"/api/v1/waitpoints/tokens/{token_id}/complete"
        return Token.from_json(await self._session.request("POST", path, json={"data": data}))

    async def retrieve_token(self, token_id: str) -> Token:
        return Token.from_json(await self._session.request("GET", f"/api/v1/waitpoints/tokens/{token_id}"))

    async def list_tokens(
        self, *, status: str | Sequence[str] | None = None, tag: str | None = None, page_size: int = 100
    ) -> AsyncIterator[Token]:
        """Newest first, following pages as you iterate."""
        params: dict[str, Any] = {"limit": page_size}
        if status:
            params["status"] = [status] if isinstance(status, str) else list(status)
        if tag:
            params["tag"] = tag
        while True:
            page = await self._session.request("GET", "/api/v1/waitpoints/tokens", params=params)
            for data in page["data"]:
                yield Token.from_json(data)
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]


class QueuesClient:
    """Queues: their runs now; pause and resume; override or reset their concurrency limit.
    A queue is named as its tasks name it: a task's own queue is ``task/<id>``."""

    def __init__(self, session: ApiSession) -> None:
        self._session = session

    async def list(self) -> builtins.list[QueueInfo]:
        data = await self._session.request("GET", "/api/v1/queues")
        return [QueueInfo.from_json(q) for q in data["data"]]

    async def retrieve(self, name: str) -> QueueInfo:
        return QueueInfo.from_json(await self._session.request("GET", queue_path(name)))

    async def pause(self, name: str) -> QueueInfo:
        """No run of the queue starts until it is resumed; it still takes triggers, and runs
        already executing go on."""
        return QueueInfo.from_json(await self._session.request("POST", queue_path(name, "pause")))

    async def resume(self, name: str) -> QueueInfo:
        return QueueInfo.from_json(await self._session.request("POST", queue_path(name, "resume")))

    async def override_concurrency_limit(self, name: str, limit: int) -> QueueInfo:
        """At most ``limit`` runs of the queue execute at once, whatever its tasks declare, until
        ``reset_concurrency_limit`` (a new version keeps the override)."""
        path = queue_path(name, "concurrency-limit")
        return QueueInfo.from_json(await self._session.request("PUT", path, json={"concurrency_limit": limit}))

    async def reset_concurrency_limit(self, name: str) -> QueueInfo:
        """Back to the limit the queue's tasks declare."""
        return QueueInfo.from_json(await self._session.request("DELETE", queue_path(name, "concurrency-limit")))


def queue_path(name: str, action: str | None = None) -> str:
    """The API path of a queue (its name may hold '/': ``task/<id>``), or of one of its actions."""
    path = "/api/v1/queues/" + quote(name, safe="/")
    return f"{path}/{action}" if action else path


class SchedulesClient:
    """Schedules: create (the same ``deduplication_key`` updates in place), list, retrieve, update,
    delete, activate, deactivate; and the timezones a schedule may use."""

    def __init__(self, session: ApiSession) -> None:
        self._session = session

    async def create(
        self,
        *,
        task: str,
        cron: str,
        timezone: str = "UTC",
        external_id: str | None = None,
        deduplication_key: str | None = None,
    ) -> ScheduleInfo:
        """Run ``task`` at each tick of ``cron`` (5 fields, ``L`` allowed) in ``timezone``.

        >>> await schedules.create(task="report", cron="0 9 * * *", timezone="Europe/Paris",
        ...                        external_id="user_42", deduplication_key="user_42-report")
        """
        body = {
            "task": task,
            "cron": cron,
            "timezone": timezone,
            "external_id": external_id,
            "deduplication_key": deduplication_key,
        }
        return ScheduleInfo.from_json(await self._session.request("POST", "/api/v1/schedules", json=body))

    async def list(
        self, *, task: str | None = None, kind: str | None = None, limit: int = 50
    ) -> builtins.list[ScheduleInfo]:
        """Every schedule of the environment (all pages), oldest first."""
        params: dict[str, Any] = {"limit": limit}
        if task is not None:
            params["task"] = task
        if kind is not None:
            params["kind"] = kind
        out: builtins.list[ScheduleInfo] = []
        while True:
            page = await self._session.request("GET", "/api/v1/schedules", params=params)
            out += [ScheduleInfo.from_json(s) for s in page["data"]]
            if not page.get("next_cursor"):
                return out
            params["cursor"] = page["next_cursor"]

    async def retrieve(self, schedule_id: str) -> ScheduleInfo:
        return ScheduleInfo.from_json(await self._session.request("GET", schedule_path(schedule_id)))

    async def update(
        self,
        schedule_id: str,
        *,
        task: str | None = None,
        cron: str | None = None,
        timezone: str | None = None,
        external_id: str | None = None,
    ) -> ScheduleInfo:
        """Change an imperative schedule; what is not given stays."""
        given = {"task": task, "cron": cron, "timezone": timezone, "external_id": external_id}
        body = {k: v for k, v in given.items() if v is not None}
        return ScheduleInfo.from_json(await self._session.request("PUT", schedule_path(schedule_id), json=body))

    async def delete(self, schedule_id: str) -> None:
        await self._session.request("DELETE", schedule_path(schedule_id))

    async def activate(self, schedule_id: str) -> ScheduleInfo:
        """Fire again from the next tick (ticks missed while inactive do not fire)."""
        return ScheduleInfo.from_json(await self._session.request("POST", schedule_path(schedule_id, "activate")))

    async def deactivate(self, schedule_id: str) -> ScheduleInfo:
        return ScheduleInfo.from_json(await self._session.request("POST", schedule_path(schedule_id, "deactivate")))

    async def timezones(self) -> builtins.list[str]:
        """The IANA timezone names a schedule may use."""
        data = await self._session.request("GET", "/api/v1/timezones")
        return [str(z) for z in data["data"]]


def schedule_path(schedule_id: str, action: str | None = None) -> str:
    path = "/api/v1/schedules/" + quote(schedule_id, safe="")
    return f"{path}/{action}" if action else path


class AuthClient:
    """Public access tokens: read-only, short-lived access to some runs, for a browser."""

    def __init__(self, session: ApiSession) -> None:
        self._session = session

    async def create_public_token(
        self, *, read: Mapping[str, Iterable[str]], expires_in: Duration | None = None
    ) -> str:
        """A token that can read the runs ``read["runs"]`` and the runs with a tag of
        ``read["tags"]`` (retrieve and subscribe only), for ``expires_in`` (default 1 h, at most 7 days).

        >>> token = await auth.create_public_token(read={"tags": ["user:42"]}, expires_in="1h")
        """
        scope = {k: [v] if isinstance(v, str) else list(v) for k, v in read.items()}
        body = {"read": scope, **_options({"expires_in": expires_in})}
        data = await self._session.request("POST", "/api/v1/auth/public-tokens", json=body)
        return str(data["token"])


def _handle(data: dict[str, Any]) -> RunHandle[Any]:
    return RunHandle(data["id"], data["task_id"], data.get("is_cached", False), data.get("public_access_token"))


class AsyncClient:
    """Talk to a Hightide server.

    >>> client = AsyncClient(api_url="http://127.0.0.1:3030", secret_key="ht_dev_...")
    >>> handle = await client.trigger("hello-world", {"name": "Ada"})
    >>> run = await client.runs.poll(handle.id)
    """

    def __init__(
        self,
        *,
        api_url: str | None = None,
        secret_key: str | None = None,
        timeout: float = 30.0,
        access_token: str | None = None,
    ) -> None:
        # A public access token (``ht_pub_...``) in place of a secret key: retrieve and subscribe only.
        settings = client_settings(api_url, access_token or secret_key)
        self.session = ApiSession(settings.api_url, settings.secret_key, timeout)
        self.runs = RunsClient(self.session)
        self.waitpoints = WaitpointsClient(self.session)
        self.auth = AuthClient(self.session)
        self.queues = QueuesClient(self.session)
        self.schedules = SchedulesClient(self.session)
        self.alerts = AlertsClient(self.session)

    @property
    def api_url(self) -> str:
        return self.session.api_url

    async def trigger(
        self,
        task_id: str,
        payload: Any = None,
        *,
        idempotency_key: str | None = None,
        idempotency_key_ttl: Duration | None = None,
        delay: Duration | datetime | None = None,
        ttl: Duration | None = None,
        tags: Iterable[str] | str | None = None,
        metadata: dict[str, Any] | None = None,
        queue: str | None = None,
        concurrency_key: str | None = None,
        max_attempts: int | None = None,
        priority: float | None = None,
        machine: str | None = None,
        version: str | None = None,
        parent_run_id: str | None = None,
        debounce: dict[str, Any] | None = None,
    ) -> RunHandle[Any]:
        """Trigger one run of ``task_id``; returns at once with its handle."""
        options = {k: v for k, v in locals().items() if k not in ("self", "task_id", "payload")}
        path = f"/api/v1/tasks/{task_id}/trigger"
        data = await self.session.request("POST", path, json=trigger_item(None, payload, options))
        return _handle(data)

    async def batch_trigger(self, items: Sequence[dict[str, Any]], task_id: str | None = None) -> BatchHandle:
        """Trigger up to 1,000 runs atomically. Each item: ``{"task": id, "payload": ..., "options": {...}}``
        (``task`` may be left out when ``task_id`` is given)."""
        body = [
            trigger_item(item.get("task"), item.get("payload"), item.get("options") or {}, f"items[{i}].options")
            for i, item in enumerate(items)
        ]
        path = f"/api/v1/tasks/{task_id}/batch" if task_id else "/api/v1/tasks/batch"
        data = await self.session.request("POST", path, json={"items": body})
        return BatchHandle([_handle(r) for r in data["runs"]])

    async def reset_idempotency_key(self, task_id: str, key: str) -> bool:
        """Forget ``key`` for ``task_id``; ``True`` if a run held it."""
        body = {"task_id": task_id, "key": key}
        data = await self.session.request("POST", "/api/v1/idempotency-keys/reset", json=body)
        return bool(data["reset"])

    async def aclose(self) -> None:
        await self.session.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
