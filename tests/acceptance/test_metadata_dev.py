"""Metadata and tags as a developer meets them in ``hightide dev``: a fan-out's progress counted on
the parent, a run's metadata and tags in ``hightide runs get``, and the tag limit."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.acceptance.conftest import Dev, hightide
from tests.support import wait_finished

TASKS = """
    import asyncio

    from hightide import metadata, tags, task


    @task(id="resize-image")
    async def resize_image(payload: dict) -> int:
        await asyncio.sleep(0.05)
        metadata.parent.increment("done")
        return payload["n"]


    @task(id="resize-all")
    async def resize_all(payload: dict) -> int:
        metadata.set("total", payload["count"]).set("done", 0)
        batch = await resize_image.batch_trigger_and_wait([{"payload": {"n": n}} for n in range(payload["count"])])
        return sum(batch.unwrap())


    @task(id="checkout", retry={"max_attempts": 1})
    async def checkout(payload: dict) -> str:
        await tags.add(f"user:{payload['user']}", "checkout")
        metadata.set("step", "paid").append("events", "charged")
        if payload.get("tag_spam"):
            await tags.add([f"spam-{i}" for i in range(20)])
        return "ok"
"""


def test_a_fan_out_counts_its_children_and_runs_get_shows_metadata_and_tags(
    project: Callable[..., Path], dev: Callable[..., Dev]
) -> None:
    root = project({"trigger/images.py": TASKS})
    server = dev(root)

    parent = wait_finished(server.client, server.client.trigger("resize-all", {"count": 20}).id, timeout=120)
    assert parent.status == "COMPLETED", parent.error
    assert parent.output == sum(range(20))
    assert parent.metadata == {"total": 20, "done": 20}, "every child's increment counted"

    run = wait_finished(server.client, server.client.trigger("checkout", {"user": 42}).id)
    assert run.status == "COMPLETED", run.error
    shown = hightide("runs", "get", run.id, cwd=root)
    assert shown.returncode == 0, shown.stderr
    assert "user:42, checkout" in shown.stdout
    assert '"step": "paid"' in shown.stdout or '"step":"paid"' in shown.stdout, shown.stdout
    as_json = json.loads(hightide("runs", "get", run.id, "--json", cwd=root).stdout)
    assert as_json["metadata"] == {"step": "paid", "events": ["charged"]}
    assert as_json["tags"] == ["user:42", "checkout"]

    spam = wait_finished(server.client, server.client.trigger("checkout", {"user": 7, "tag_spam": True}).id)
    assert spam.status == "FAILED"
    assert spam.error["name"] == "ValidationError"
    assert "over the limit of 10 tags per run" in spam.error["message"]
    assert spam.tags == ["user:7", "checkout"], "none of the refused tags were added"
