"""The realtime API through the SDK, against a real server and worker (SQLite and PostgreSQL):
``runs.subscribe`` and ``runs.subscribe_to_tag`` see runs change live, and a dropped connection
resumes without missing the final state."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

from hightide import AsyncClient, Run, RunStatus
from tests.integration.conftest import Stack
from tests.support import eventually


def _client(stack: Stack, url: str | None = None) -> AsyncClient:
    return AsyncClient(api_url=url or stack.url, secret_key=stack.key)


async def _collect(runs: AsyncIterator[Run], into: list[Run], timeout: float = 30.0) -> list[Run]:
    async with asyncio.timeout(timeout):
        async for run in runs:
            into.append(run)
    return into


async def test_subscribe_sees_queued_executing_completed_and_ends(stack: Stack) -> None:
    async with _client(stack) as client:
        # The queue of task "serial" runs one at a time: a first run holds it, so the second waits QUEUED.
        blocker = await client.trigger("sleepy", {"seconds": 1.5}, queue="task/serial")
        handle = await client.trigger("sleepy", {"seconds": 1.0}, queue="task/serial")
        seen = await _collect(client.runs.subscribe(handle.id), [])
        await client.runs.poll(blocker.id, timeout=30)
    statuses = [run.status for run in seen]
    assert statuses[0] == RunStatus.QUEUED
    assert RunStatus.EXECUTING in statuses
    assert statuses[-1] == RunStatus.COMPLETED  # and the iterator ended by itself
    assert statuses.index(RunStatus.EXECUTING) < len(statuses) - 1
    final = seen[-1]
    assert final.output == "woke" and final.is_finished
    assert [a.number for a in final.attempts] == [1]  # the same object as runs.retrieve


async def test_subscribe_to_a_finished_run_sends_its_final_state_and_ends(stack: Stack) -> None:
    async with _client(stack) as client:
        handle = await client.trigger("echo", {"n": 1})
        await client.runs.poll(handle.id, timeout=30)
        seen = await _collect(client.runs.subscribe(handle.id), [])
    assert [r.status for r in seen] == [RunStatus.COMPLETED]
    assert seen[0].output["payload"] == {"n": 1}


async def test_subscribe_to_tag_sees_the_runs_of_that_tag_only(stack: Stack) -> None:
    tag, other = f"rt-{uuid.uuid4().hex[:8]}", f"rt-other-{uuid.uuid4().hex[:8]}"
    async with _client(stack) as client:
        earlier = await client.trigger("echo", {"i": 0}, tags=[tag])
        await client.runs.poll(earlier.id, timeout=30)
        seen: list[Run] = []
        collector = asyncio.create_task(_collect(client.runs.subscribe_to_tag(tag), seen, timeout=60))
        try:
            # The first snapshot: the earlier run of the tag, finished.
            await eventually(lambda: _has(seen, earlier.id, RunStatus.COMPLETED), what="the snapshot")
            mine = [await client.trigger("echo", {"i": i}, tags=[tag, "shared"]) for i in (1, 2)]
            theirs = await client.trigger("echo", {"i": 3}, tags=[other, "shared"])
            for handle in mine:
                await eventually(lambda h=handle: _has(seen, h.id, RunStatus.COMPLETED), timeout=30)
            await client.runs.poll(theirs.id, timeout=30)
            await asyncio.sleep(0.5)  # time for a wrong event to arrive, if one were sent
        finally:
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector
    assert {r.id for r in seen} == {earlier.id, *(h.id for h in mine)}
    assert all(tag in r.tags for r in seen)


async def _has(seen: list[Run], run_id: str, status: RunStatus) -> bool:
    return any(r.id == run_id and r.status == status for r in seen)


class Proxy:
    """A TCP proxy in front of the server whose connections the test can drop, and which can
    refuse new ones for a while (a network cut), recording what each request asked for."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.refusing = False
        self.requests: list[bytes] = []
        self._pipes: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        self.drop()
        assert self._server is not None
        self._server.close()

    def drop(self) -> None:
        for task in list(self._pipes):
            task.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, record: bool) -> None:
            while data := await src.read(65536):
                if record:
                    self.requests.append(data)
                dst.write(data)
                await dst.drain()

        async def both() -> None:
            try:
                await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))
            finally:
                writer.close()
                up_writer.close()

        task = asyncio.create_task(both())
        self._pipes.add(task)
        task.add_done_callback(self._pipes.discard)


async def test_a_dropped_connection_resumes_and_sees_the_final_state(stack: Stack) -> None:
    port = int(stack.url.rsplit(":", 1)[1])
    proxy = Proxy(port)
    async with proxy as proxied, _client(stack) as direct, _client(stack, proxied) as client:
        handle = await direct.trigger("sleepy", {"seconds": 1.0})
        seen: list[Run] = []
        collector = asyncio.create_task(_collect(client.runs.subscribe(handle.id), seen, timeout=60))
        await eventually(lambda: _has(seen, handle.id, RunStatus.EXECUTING), timeout=30, what="EXECUTING")
        # The network goes away while the run finishes, then comes back.
        proxy.refusing = True
        proxy.drop()
        await direct.runs.poll(handle.id, timeout=30)
        proxy.refusing = False
        await asyncio.wait_for(collector, 30)
    assert seen[-1].status == RunStatus.COMPLETED
    resumed = [r for r in proxy.requests if b"last-event-id" in r.lower()]
    assert resumed, "the reconnect did not send Last-Event-ID"


async def test_subscribe_follows_a_run_through_its_waits(stack: Stack) -> None:
    async with _client(stack) as client:
        handle = await client.trigger("parent-waits", {"n": 2, "sleep": 2})
        seen = await _collect(client.runs.subscribe(handle.id), [], timeout=60)
    statuses = [run.status for run in seen]
    assert RunStatus.WAITING in statuses, statuses  # suspended on its child and on the timer
    waiting = next(run for run in seen if run.status == RunStatus.WAITING)
    assert waiting.waiting_for and waiting.waiting_for[0]["kind"] in ("RUN", "DURATION")
    assert statuses[-1] == RunStatus.COMPLETED and seen[-1].output["child"] == 4
