"""Tasks that use run metadata and tags (the worker runs with a 1 s checkpoint threshold)."""

import asyncio
import os
import time

from hightide import ValidationError, metadata, tags, task, wait


@task(id="meta-progress")
async def meta_progress(payload: dict) -> dict:
    metadata.set("status", "started").set("total", payload.get("steps", 3))
    for _ in range(payload.get("steps", 3)):
        metadata.increment("done")
        await asyncio.sleep(payload.get("pause", 0))
    metadata.set("status", "finished")
    return metadata.current()


@task(id="meta-child")
async def meta_child(payload: dict) -> int:
    metadata.parent.increment("done")
    metadata.parent.append("children", payload["n"])
    metadata.root.increment("leaves")
    return payload["n"]


@task(id="meta-fan-out")
async def meta_fan_out(payload: dict) -> dict:
    metadata.set("total", payload["count"])
    batch = await meta_child.batch_trigger_and_wait([{"payload": {"n": n}} for n in range(payload["count"])])
    # Resumed: the children's operations on this run are in the metadata it started from.
    return {"outputs": batch.unwrap(), "seen": metadata.current()}


@task(id="meta-grandparent")
async def meta_grandparent(payload: dict) -> int:
    result = await meta_fan_out.trigger_and_wait({"count": payload["count"]})
    return len(result.unwrap()["outputs"])


@task(id="meta-then-fail", retry={"max_attempts": 1})
async def meta_then_fail(payload: dict) -> None:
    metadata.set("reached", "the failure")
    raise ValueError("failed after setting metadata")


@task(id="meta-sync")
def meta_sync(payload: dict) -> dict:
    metadata.set("from", "a thread").increment("n", 2)
    return metadata.current()


@task(id="meta-across-a-wait")
async def meta_across_a_wait(payload: dict) -> dict:
    metadata.increment("before")  # replayed on resume: not counted twice
    await wait.for_(seconds=2)  # over the 1 s threshold: the run suspends
    metadata.increment("after")
    return metadata.current()


@task(id="meta-live")
async def meta_live(payload: dict) -> str:
    metadata.set("phase", "working")
    deadline = time.monotonic() + payload.get("seconds", 20)
    while time.monotonic() < deadline and metadata.get("stop") is None:
        await asyncio.sleep(0.1)
        metadata.increment("ticks")
        await metadata.flush()  # the server's answer brings what others changed (a stop from outside)
    return "stopped" if metadata.get("stop") else "timed out"


@task(id="tagger")
async def tagger(payload: dict) -> dict:
    added = await tags.add(*payload["tags"])
    try:
        await tags.add([f"extra-{i}" for i in range(payload.get("extra", 0))])
    except ValidationError as exc:
        return {"added": added, "refused": exc.message}
    return {"added": added, "refused": None}


@task(id="meta-too-big-for-parent")
async def meta_too_big_child(payload: dict) -> str:
    metadata.parent.set("huge", "x" * 300_000)
    try:
        await metadata.flush()
    except ValidationError as exc:
        return exc.message
    return "sent"


@task(id="meta-too-big-parent")
async def meta_too_big_parent(payload: dict) -> dict:
    result = await meta_too_big_child.trigger_and_wait({})
    return {"child": result.unwrap(), "mine": metadata.current()}


@task(id="meta-crash", retry={"max_attempts": 1})
async def meta_crash(payload: dict) -> None:
    metadata.set("before_crash", True)
    await asyncio.sleep(1.6)  # the buffer is flushed within a second
    os._exit(3)  # the runner dies: nothing after the last flush can be sent
