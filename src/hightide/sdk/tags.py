"""``tags``: add tags to the run executing here, to find it later (``runs.list(tag=...)``, the
dashboard's filter, ``runs.subscribe_to_tag``). At most 10 tags per run, those given at trigger time
included.

>>> from hightide import tags, task
>>> @task(id="checkout")
... async def checkout(payload: dict) -> None:
...     await tags.add(f"user:{payload['user_id']}", "checkout")
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from hightide.core.limits import MAX_TAG_LENGTH, MAX_TAGS, check_text
from hightide.core.metadata import check_tag_count
from hightide.sdk.context import current_context
from hightide.sdk.defaults import default_client
from hightide.sdk.journal import internal_calls

_log = logging.getLogger("hightide.tags")


class RunTags:
    async def add(self, *tags: str | Iterable[str]) -> list[str]:
        """Add tags (strings, or lists of them) to the current run; returns all its tags. Tags it
        has already are skipped; past 10 in all it raises ``ValidationError`` and adds none.
        Outside a run it does nothing (as in Trigger.dev: set tags when you trigger instead)."""
        names = list(dict.fromkeys(_flatten(tags)))
        for i, name in enumerate(names):
            check_text(name, f"tags[{i}]", MAX_TAG_LENGTH)
        ctx = current_context()
        if ctx is None:
            _log.warning("tags.add() works inside a run only; pass tags=[...] when you trigger the run instead")
            return []
        new = [name for name in names if name not in ctx.run.tags]
        if not new:
            return list(ctx.run.tags)
        check_tag_count(ctx.run.id, ctx.run.tags, new, MAX_TAGS)
        with internal_calls():  # tasks the HTTP client may start are not the run's
            answer = await default_client().session.request(
                "POST", f"/api/v1/runs/{ctx.run.id}/tags", json={"tags": new}
            )
        every = [str(tag) for tag in answer["tags"]]
        ctx.run.tags[:] = every  # ctx.run.tags stays the run's tags
        return every


def _flatten(tags: Iterable[str | Iterable[str]]) -> list[str]:
    out: list[str] = []
    for tag in tags:
        if isinstance(tag, str):
            out.append(tag)
        else:
            out.extend(tag)
    return out


tags = RunTags()
