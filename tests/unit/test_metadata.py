"""Metadata operations (``core/metadata``) and the runner's buffer (``sdk/metadata``), without a server:
the buffer's sender is a function standing in for the API, applying what it is sent the way the
server does."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from hightide import ValidationError, metadata
from hightide.core.limits import MAX_METADATA_BYTES
from hightide.core.metadata import MetadataOperation, OperationType, apply_operations, cull
from hightide.errors import ConflictError, HightideConnectionError
from hightide.sdk import metadata as run_metadata
from hightide.sdk.metadata import MetadataBuffer
from tests.support import eventually

INC, SET, DELETE, APPEND = OperationType.INCREMENT, OperationType.SET, OperationType.DELETE, OperationType.APPEND


def test_append_and_remove_follow_trigger_dev() -> None:
    ops = [
        MetadataOperation(APPEND, "new", 1),
        MetadataOperation(APPEND, "scalar", 2),
        MetadataOperation(OperationType.REMOVE, "items", 1),
        MetadataOperation(OperationType.REMOVE, "scalar_kept", 1),
        MetadataOperation(INC, "text", 3),
    ]
    doc = {"scalar": "x", "items": [1, True, 1.0, "1", [1]], "scalar_kept": 1, "text": "abc"}
    assert apply_operations(doc, ops) == {
        "new": [1],
        "scalar": ["x", 2],
        "items": [True, "1", [1]],  # 1 == 1.0, but true and "1" are other values
        "scalar_kept": 1,
        "text": 3,  # a non-number counts as 0
    }
    assert doc["items"] == [1, True, 1.0, "1", [1]], "the input is not changed"


def test_cull_keeps_the_effect_in_fewer_operations() -> None:
    ops = [
        MetadataOperation(INC, "a", 1),
        MetadataOperation(INC, "a", 2),
        MetadataOperation(SET, "b", 1),
        MetadataOperation(APPEND, "c", 1),
        MetadataOperation(SET, "b", 2),
        MetadataOperation(INC, "a", 3),
        MetadataOperation(DELETE, "c"),
    ]
    culled = cull(ops)
    assert culled == [MetadataOperation(INC, "a", 6), MetadataOperation(SET, "b", 2), MetadataOperation(DELETE, "c")]
    for start in ({}, {"a": 10, "b": 0, "c": [0]}, {"a": "x"}):
        assert apply_operations(start, culled) == apply_operations(start, ops)
    replace = MetadataOperation(OperationType.REPLACE, None, {"z": 1})
    assert cull([*ops, replace, MetadataOperation(INC, "a", 1)]) == [replace, MetadataOperation(INC, "a", 1)]


class FakeServer:
    """What the API does with a flush: apply each list to its run, in order; or fail as told."""

    def __init__(self, docs: dict[str, dict[str, Any]]) -> None:
        self.docs = docs
        self.bodies: list[dict[str, Any]] = []
        self.fail_with: list[Exception] = []

    async def send(self, run_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self.bodies.append(body)
        if self.fail_with:
            raise self.fail_with.pop(0)
        ids = {"operations": run_id, "parent_operations": "parent", "root_operations": "root"}
        for field, ops in body.items():
            parsed = [MetadataOperation(OperationType(o["type"]), o.get("key"), o.get("value")) for o in ops]
            self.docs[ids[field]] = apply_operations(self.docs.get(ids[field], {}), parsed)
        return {"metadata": self.docs.get(run_id, {})}


@pytest.fixture
def inside_a_run() -> Any:
    """Make ``metadata`` act on a buffer of run ``run_1`` (child of ``parent``, tree of ``root``)."""
    created: list[tuple[MetadataBuffer, FakeServer]] = []

    def make(initial: dict[str, Any] | None = None, parent: str | None = "parent", root: str | None = "root") -> Any:
        server = FakeServer({"run_1": dict(initial or {})})
        buffer = MetadataBuffer("run_1", initial or {}, parent, root, send=server.send, interval=0.05)
        token = run_metadata.current.set(buffer)
        created.append((buffer, server))
        return buffer, server, token

    yield make
    run_metadata.current.set(None)


async def test_changes_are_local_at_once_and_flushed_as_operations(inside_a_run: Any) -> None:
    buffer, server, _ = inside_a_run({"total": 3})
    buffer.start()
    metadata.set("status", "running").increment("done").increment("done")
    metadata.parent.increment("done")
    metadata.root.append("children", "run_1")
    assert metadata.get("done") == 2 and metadata.current() == {"total": 3, "status": "running", "done": 2}
    current = metadata.current()
    current["total"] = 99  # a copy
    assert metadata.get("total") == 3

    await metadata.flush()

    assert server.bodies == [
        {
            "operations": [
                {"type": "set", "key": "status", "value": "running"},
                {"type": "increment", "key": "done", "value": 2},
            ],
            "parent_operations": [{"type": "increment", "key": "done", "value": 1}],
            "root_operations": [{"type": "append", "key": "children", "value": "run_1"}],
        }
    ]
    assert server.docs["parent"] == {"done": 1} and server.docs["run_1"]["done"] == 2
    metadata.decrement("done", 2)
    await buffer.close()  # the last changes go with close: the run's result is reported after it
    assert server.docs["run_1"] == {"total": 3, "status": "running", "done": 0}


async def test_the_buffer_flushes_every_interval_on_its_own(inside_a_run: Any) -> None:
    buffer, server, _ = inside_a_run()
    buffer.start()
    metadata.set("progress", 0.5)

    async def sent() -> bool:
        return server.docs["run_1"].get("progress") == 0.5

    await eventually(sent, timeout=2, interval=0.02, what="the buffer to flush on its own")
    assert server.docs["run_1"] == {"progress": 0.5}
    await buffer.close()
    assert len(server.bodies) == 1, "nothing more to send"


async def test_a_run_with_no_parent_is_its_own_parent_and_root(inside_a_run: Any) -> None:
    buffer, server, _ = inside_a_run(parent=None, root=None)
    metadata.parent.increment("n")
    metadata.root.increment("n")
    assert metadata.get("n") == 2
    await buffer.close()
    assert server.bodies == [{"operations": [{"type": "increment", "key": "n", "value": 2}]}]


async def test_a_child_of_the_root_sends_parent_and_root_operations_as_one_list(inside_a_run: Any) -> None:
    buffer, server, _ = inside_a_run(parent="parent", root="parent")
    metadata.parent.set("x", 1)
    metadata.root.set("x", 2)
    metadata.parent.increment("n")
    await buffer.close()
    assert server.bodies == [
        {"parent_operations": [{"type": "set", "key": "x", "value": 2}, {"type": "increment", "key": "n", "value": 1}]}
    ]


async def test_values_become_json_and_bad_ones_are_refused_at_the_call(inside_a_run: Any) -> None:
    inside_a_run()
    metadata.set("when", datetime(2026, 1, 2, tzinfo=UTC))
    assert metadata.get("when") == "2026-01-02T00:00:00Z"
    with pytest.raises(ValidationError, match="not JSON-serialisable"):
        metadata.set("nan", float("nan"))
    with pytest.raises(ValidationError, match="key"):
        metadata.set("", 1)
    with pytest.raises(ValidationError, match="NUL"):
        metadata.set("a\x00", 1)
    with pytest.raises(ValidationError, match="increment takes a finite number"):
        metadata.increment("n", True)  # type: ignore[arg-type]
    assert metadata.current() == {"when": "2026-01-02T00:00:00Z"}


async def test_the_run_cannot_take_its_own_metadata_over_the_limit(inside_a_run: Any) -> None:
    inside_a_run()
    metadata.set("a", "x" * (MAX_METADATA_BYTES // 2))
    with pytest.raises(ValidationError) as raised:
        metadata.set("b", "y" * (MAX_METADATA_BYTES // 2))
    assert raised.value.details["limit"] == MAX_METADATA_BYTES
    assert metadata.get("b") is None, "the change that would go over is not made"
    for _ in range(1000):  # many small changes are measured cheaply and still counted
        metadata.increment("n")
    assert metadata.get("n") == 1000


async def test_a_lost_connection_keeps_the_changes_for_the_next_flush(inside_a_run: Any) -> None:
    buffer, server, _ = inside_a_run()
    server.fail_with = [HightideConnectionError("down")]
    metadata.increment("n")
    with pytest.raises(HightideConnectionError):
        await metadata.flush()
    metadata.increment("n")
    await buffer.close()
    assert server.docs["run_1"] == {"n": 2}


async def test_a_refused_list_is_dropped_and_the_others_still_sent(inside_a_run: Any) -> None:
    buffer, server, _ = inside_a_run()
    server.fail_with = [
        ValidationError("metadata: the parent run would be over 256 KB", details={"target": "parent", "limit": 1})
    ]
    metadata.set("mine", 1)
    metadata.parent.set("big", "x")
    with pytest.raises(ValidationError, match="256 KB"):
        await metadata.flush()
    assert server.docs == {"run_1": {"mine": 1}}
    assert server.bodies[-1] == {"operations": [{"type": "set", "key": "mine", "value": 1}]}
    server.fail_with = [ConflictError("run finished", details={"target": "run"})]
    metadata.set("late", 1)
    await buffer.close()  # never raises: the run's result is what matters now
    assert server.docs == {"run_1": {"mine": 1}}


def test_outside_a_run_metadata_does_nothing() -> None:
    assert run_metadata.current.get() is None
    assert metadata.set("a", 1).increment("b") is metadata
    assert metadata.get("a") is None and metadata.current() == {}
    asyncio.run(metadata.flush())


def test_metadata_and_tag_changes_wake_no_claimer_and_travel_in_notifications() -> None:
    from hightide.core.states import RunStatus
    from hightide.engine.notify import cancel_key, keys_of
    from hightide.store import changes as wire
    from hightide.store.changes import Change, ChangeKind

    quiet = [Change("env_1", "run_1", RunStatus.EXECUTING, kind) for kind in (ChangeKind.METADATA, ChangeKind.TAGS)]
    assert keys_of(quiet) == set()
    assert keys_of([*quiet, Change("env_1", "run_2", RunStatus.CANCELED, ChangeKind.CANCEL_REQUESTED)]) == {
        "env_1",
        cancel_key("env_1"),
    }
    [payload] = wire.encode("me", quiet)
    assert wire.decode(payload) == ("me", tuple(quiet))
