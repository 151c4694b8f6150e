"""``metadata``: a run's own structured, mutable state (progress, counters, intermediate results),
readable and changeable inside the run and visible live outside it (SPEC §5).

>>> from hightide import metadata, task
>>> @task(id="import-rows")
... async def import_rows(payload: dict) -> None:
...     metadata.set("status", "importing").set("total", len(payload["rows"]))
...     for row in payload["rows"]:
...         ...
...         metadata.increment("done")
...     metadata.parent.increment("files_done")  # a fan-out's progress, on the run that triggered this one

Changes apply at once to the run's local view (``get``, ``current``) and are buffered: the runner
sends them as operations at least every second, when the run finishes (before its result is
reported), fails or suspends, and on ``await metadata.flush()``. The server applies operations, not
documents, under the run's row lock, so concurrent increments from many children all count.

Outside a run every call does nothing (``get`` is ``None``, ``current()`` is ``{}``), as in
Trigger.dev: code shared with a backend can call them freely.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import TypeAdapter

from hightide.core.limits import MAX_METADATA_BYTES, MAX_METADATA_OPERATIONS
from hightide.core.metadata import (
    MetadataOperation,
    OperationType,
    Target,
    apply_operations,
    check_metadata_size,
    check_operation,
    cull,
    encoded_size,
    growth_bound,
)
from hightide.errors import HightideConnectionError, HightideError, ServerError, ValidationError
from hightide.sdk.defaults import default_client
from hightide.sdk.journal import internal_calls, service
from hightide.sdk.logger import logger

FLUSH_INTERVAL = 1.0  # seconds between flushes while there is something to send
FINAL_RETRY_SECONDS = 30.0  # how long the flush at the end of a run rides out a server restart
FIELDS = {Target.RUN: "operations", Target.PARENT: "parent_operations", Target.ROOT: "root_operations"}

Send = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""Posts operations for a run (its id, the request body) and returns the server's answer."""

_log = logging.getLogger("hightide.metadata")
_ANY: TypeAdapter[Any] = TypeAdapter(Any)


async def _post(run_id: str, body: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = await default_client().session.request(
        "POST", f"/api/v1/runs/{run_id}/metadata", json=body
    )
    return answer


class MetadataBuffer:
    """The metadata of the run executing in this runner: its local view, and the operations on it,
    its parent and its root that the server has not been sent yet.

    Thread-safe (a plain ``def`` task changes metadata from a thread); flushes happen on the run's
    event loop, one at a time, in a task of the runner's own (a suspension does not cut it short)."""

    def __init__(
        self,
        run_id: str,
        metadata: dict[str, Any],
        parent_run_id: str | None = None,
        root_run_id: str | None = None,
        *,
        replaying: Callable[[], bool] = lambda: False,
        send: Send = _post,
        interval: float = FLUSH_INTERVAL,
    ) -> None:
        self.run_id = run_id
        self._doc: dict[str, Any] = copy.deepcopy(metadata) if metadata else {}
        self._size: int | None = None  # measured at the first change (most runs make none)
        self._growth = 0  # at most this many bytes were added since the size was measured
        self._pending: dict[Target, list[MetadataOperation]] = {t: [] for t in Target}
        # A run with no parent is its own parent and root; a child of the root has one run as both,
        # and its operations on either keep their order in one list.
        parent = Target.RUN if parent_run_id is None else Target.PARENT
        root = Target.ROOT if parent_run_id is not None and root_run_id not in (None, parent_run_id) else parent
        self._route = {Target.RUN: Target.RUN, Target.PARENT: parent, Target.ROOT: root}
        self._replaying = replaying
        self._send = send
        self._interval = interval
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flushing: asyncio.Lock | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._woken = False  # changed at least once
        self._closed = False

    # -- what the run sees -------------------------------------------------------------------
    def add(self, target: Target, op: MetadataOperation) -> None:
        """Apply ``op`` to the local view (the run's own) and queue it. In the part of a run that
        replays from its journal it does nothing: its effect is in the metadata the run started with
        (an earlier execution flushed it before suspending)."""
        check_operation(op, "metadata")
        if self._replaying():
            return
        target = self._route[target]
        with self._lock:
            if target is Target.RUN:
                new = apply_operations(self._doc, [op])
                self._check_size(new, op)
                self._doc = new
            _queue(self._pending[target], op)
            if not self._woken:
                self._woken = True
                if self._loop is not None:
                    self._loop.call_soon_threadsafe(self._start_flusher)  # from the task or its thread

    def _check_size(self, new: dict[str, Any], op: MetadataOperation) -> None:
        # Measuring the whole document after every change would cost O(size) each: measure only
        # when what was added since the last measure might take it over the limit.
        if self._size is None:
            self._size = encoded_size(self._doc)
        growth = self._growth + (
            MAX_METADATA_BYTES if op.type is OperationType.REPLACE else growth_bound(op, new.get(op.key or ""))
        )
        if self._size + growth > MAX_METADATA_BYTES:
            self._size, growth = check_metadata_size(new, self.run_id), 0
        self._growth = growth

    def get(self, key: str) -> Any:
        with self._lock:
            return copy.deepcopy(self._doc.get(key))

    def current(self) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._doc)

    # -- sending -------------------------------------------------------------------------------
    def start(self) -> None:
        """Flush every ``interval`` seconds, on the running loop, from the first change until
        ``close`` (a run that changes nothing costs nothing)."""
        self._loop = asyncio.get_running_loop()

    def _start_flusher(self) -> None:
        # A callback of the loop, not a task: the flusher is nobody's child and takes no journal position.
        if self._loop is not None and not self._closed:
            self._stop = asyncio.Event()
            task = self._loop.create_task(self._every_interval(), name="hightide-metadata")
            self._task = service(task)

    async def _every_interval(self) -> None:
        assert self._stop is not None
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), self._interval)
            except TimeoutError:
                pass
            if self._stop.is_set():
                return
            try:
                await self.flush(final=False, explicit=False)
            except Exception:  # a bug: keep flushing, the run must not lose its changes
                _log.exception("could not send the metadata of run %s", self.run_id)

    async def close(self) -> None:
        """Stop flushing every interval, then send what is left (before the run's result is
        reported: a finished run is never seen without its final metadata). Never raises."""
        self._closed = True
        if self._stop is not None:
            self._stop.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        elif not self._woken:
            return  # nothing was ever changed: nothing to send
        try:
            await self.flush(final=True, explicit=False)
        except Exception:  # a bug here must not lose the run's result
            _log.exception("could not send the metadata of run %s", self.run_id)

    async def flush_now(self, explicit: bool = True) -> None:
        """``await metadata.flush()``: send now, in a task of the runner's own (the run may be
        suspended or cancelled meanwhile: a request once started is finished). Raises what the
        server refused if ``explicit``."""
        with self._lock:
            if not any(self._pending.values()):
                return
        with internal_calls():
            task = service(asyncio.get_running_loop().create_task(self.flush(final=False, explicit=explicit)))
        await asyncio.shield(task)

    async def flush(self, *, final: bool, explicit: bool) -> None:
        """Send the queued operations, in order. A transport failure keeps them queued (or, for the
        ``final`` flush, retries for ``FINAL_RETRY_SECONDS``); operations the server refuses (a run
        over the limit, finished too long ago) are dropped with a warning in the run's log, and
        raised if ``explicit``."""
        if self._flushing is None:  # made on the loop that flushes, at its first flush
            self._flushing = asyncio.Lock()
        async with self._flushing:
            with self._lock:
                batch = {target: cull(ops) for target, ops in self._pending.items() if ops}
                for ops in self._pending.values():
                    ops.clear()
            refused: HightideError | None = None
            deadline = time.monotonic() + FINAL_RETRY_SECONDS
            delay = 0.2
            while batch:
                body = {FIELDS[t]: [op.to_json() for op in ops[:MAX_METADATA_OPERATIONS]] for t, ops in batch.items()}
                try:
                    with internal_calls():
                        answer = await self._send(self.run_id, body)
                except (HightideConnectionError, ServerError) as exc:
                    if final and time.monotonic() < deadline:
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, 5.0)
                        continue
                    if final:
                        _warn(f"metadata changes of run {self.run_id} were not sent, the server did not answer: {exc}")
                        return
                    self._requeue(batch)
                    if explicit:
                        raise
                    return
                except HightideError as exc:  # refused: what was sent will never apply
                    refused = exc
                    _warn(f"metadata changes of run {self.run_id} were refused and dropped: {exc.message}")
                    dropped = _refused_target(exc)
                    if dropped is not None and dropped in batch and len(batch) > 1:
                        batch.pop(dropped)
                        continue  # the other lists are sent without it
                    break
                self._sent(batch, answer)
            if refused is not None and explicit:
                raise refused

    def _sent(self, batch: dict[Target, list[MetadataOperation]], answer: dict[str, Any]) -> None:
        """Take what was sent off ``batch``; the server's document (with operations queued since
        applied on it) becomes the local view: it has what others changed too (a child's
        ``metadata.parent`` operations, ``runs.update_metadata``)."""
        for target in list(batch):
            del batch[target][:MAX_METADATA_OPERATIONS]
            if not batch[target]:
                del batch[target]
        server_doc = answer.get("metadata")
        if batch or not isinstance(server_doc, dict):
            return
        with self._lock:
            doc = apply_operations(server_doc, self._pending[Target.RUN])
            self._doc, self._size, self._growth = doc, encoded_size(doc), 0

    def _requeue(self, batch: dict[Target, list[MetadataOperation]]) -> None:
        with self._lock:
            for target, ops in batch.items():
                self._pending[target][:0] = ops


def _queue(pending: list[MetadataOperation], op: MetadataOperation) -> None:
    """Append ``op``; a run of increments of one key stays one operation (a tight loop of
    ``increment`` queues one, not a million)."""
    last = pending[-1] if pending else None
    if last is not None and last.type is op.type is OperationType.INCREMENT and last.key == op.key:
        pending[-1] = MetadataOperation(OperationType.INCREMENT, op.key, last.value + op.value)
    elif last is not None and op.type is OperationType.SET and last.type is OperationType.SET and last.key == op.key:
        pending[-1] = op
    else:
        pending.append(op)


def _refused_target(exc: HightideError) -> Target | None:
    """Which list of a request the server refused (its ``details.target``), if it said."""
    target = exc.details.get("target") if isinstance(exc.details, dict) else None
    return Target(target) if target in {t.value for t in Target} else None


def _warn(message: str) -> None:
    logger.warn(message)  # a run log line: the run's page and `hightide runs logs` show it


def _plain(value: Any, what: str) -> Any:
    """``value`` as JSON (Pydantic models, dataclasses and datetimes converted), or a ``ValidationError``."""
    try:
        # NaN and Infinity first: Pydantic would make them null without a word.
        json.dumps(value, allow_nan=False, default=lambda _: None)
        converted = _ANY.dump_python(value, mode="json")
        json.dumps(converted, ensure_ascii=False).encode()  # lone surrogates
    except Exception as exc:  # Pydantic's serialisation errors, ValueError, UnicodeError
        raise ValidationError(
            f"{what}: not JSON-serialisable ({exc}); metadata takes JSON values, Pydantic models, "
            "dataclasses and datetimes",
            details={"field": "metadata"},
        ) from None
    return converted


current: contextvars.ContextVar[MetadataBuffer | None] = contextvars.ContextVar("hightide_metadata", default=None)


async def flush_before_children() -> None:
    """Called when a run is about to trigger children: what it changed before is applied before any
    child can change it too (a parent's ``set("done", 0)`` must not land after a child's increment)."""
    buffer = current.get()
    if buffer is not None:
        await buffer.flush_now(explicit=False)


class MetadataUpdater:
    """The changes of one run's metadata: the run's own (``metadata``), its parent's
    (``metadata.parent``) or its root's (``metadata.root``). Each returns the updater, so calls chain:
    ``metadata.set("a", 1).increment("b")``."""

    def __init__(self, target: Target) -> None:
        self._target = target

    def _add(self, type_: OperationType, key: str | None, value: Any = None) -> MetadataUpdater:
        buffer = current.get()
        if buffer is not None:
            buffer.add(self._target, MetadataOperation(type_, key, value))
        return self

    def set(self, key: str, value: Any) -> MetadataUpdater:
        """``metadata.set("progress", 0.5)``"""
        return self._add(OperationType.SET, key, _plain(value, f"metadata {key!r}"))

    def delete(self, key: str) -> MetadataUpdater:
        return self._add(OperationType.DELETE, key)

    def increment(self, key: str, n: float = 1) -> MetadataUpdater:
        """``metadata.increment("done")``: a missing (or non-number) key counts from 0."""
        return self._add(OperationType.INCREMENT, key, n)

    def decrement(self, key: str, n: float = 1) -> MetadataUpdater:
        if isinstance(n, bool) or not isinstance(n, int | float):
            raise ValidationError(f"metadata.value: decrement takes a number, not {type(n).__name__}")
        return self._add(OperationType.INCREMENT, key, -n)

    def append(self, key: str, value: Any) -> MetadataUpdater:
        """``metadata.append("logs", "step 1 done")``: the key becomes a list if it is not one."""
        return self._add(OperationType.APPEND, key, _plain(value, f"metadata {key!r}"))

    def remove(self, key: str, value: Any) -> MetadataUpdater:
        """Remove every item equal to ``value`` from the list at ``key``."""
        return self._add(OperationType.REMOVE, key, _plain(value, f"metadata {key!r}"))

    def replace(self, metadata: dict[str, Any]) -> MetadataUpdater:
        """The whole metadata becomes ``metadata``."""
        value = _plain(metadata, "metadata")
        if not isinstance(value, dict):
            raise ValidationError("metadata: replace takes a dict", details={"field": "metadata"})
        return self._add(OperationType.REPLACE, None, value)


class RunMetadata(MetadataUpdater):
    """``from hightide import metadata``: the current run's metadata (see the module's docstring)."""

    def __init__(self) -> None:
        super().__init__(Target.RUN)
        self.parent = MetadataUpdater(Target.PARENT)
        """The metadata of the run that triggered this one (this run's own, if none did)."""
        self.root = MetadataUpdater(Target.ROOT)
        """The metadata of the top run of this run's tree (this run's own, if it has no parent)."""

    def get(self, key: str) -> Any:
        """The value at ``key`` in the run's metadata (``None`` if absent), changes included."""
        buffer = current.get()
        return None if buffer is None else buffer.get(key)

    def current(self) -> dict[str, Any]:
        """A copy of the whole of the run's metadata, changes included."""
        buffer = current.get()
        return {} if buffer is None else buffer.current()

    async def flush(self) -> None:
        """Send the buffered changes now (they are sent at least every second anyway). Raises what
        the server refuses, e.g. a parent whose metadata would go over 256 KB."""
        buffer = current.get()
        if buffer is not None:
            await buffer.flush_now()


metadata = RunMetadata()
