"""Run metadata and tags over HTTP: the operations a runner flushes (on its run, the parent and the
root), a replacement from outside a run (``runs.update_metadata``), and tags added to a run."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ConfigDict, Field

from hightide.core import limits
from hightide.core.metadata import MetadataOperation, OperationType
from hightide.engine.runs import RunEngine
from hightide.server.auth import CurrentEnv
from hightide.server.errors import responses
from hightide.server.models import Body, Id, Name, StrictBody, Tag
from hightide.server.routing import ApiRoute

router = APIRouter(prefix="/api/v1", tags=["metadata"], route_class=ApiRoute, responses=responses(401, 422, 500))
RunPath = Annotated[Id, Path()]


class MetadataOperationBody(Body):
    """One change of a run's metadata. Every type but ``replace`` names a top-level ``key``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["set", "delete", "increment", "append", "remove", "replace"] = Field(
        description="set: key = value; delete: remove key; increment: key + value (a number; a missing or "
        "non-number key counts as 0; decrement is a negative increment); append: add value to the list at "
        "key; remove: take every item equal to value out of the list at key; replace: the whole metadata "
        "becomes value (an object)"
    )
    key: Name | None = Field(default=None, description="the top-level key (not used by replace)")
    value: Any = Field(default=None, description="not used by delete")

    def as_operation(self) -> MetadataOperation:
        return MetadataOperation(OperationType(self.type), self.key, self.value)


Operations = Annotated[list[MetadataOperationBody], Field(max_length=limits.MAX_METADATA_OPERATIONS)]


class MetadataOperationsBody(StrictBody):
    """Operations applied in one transaction: all of them, or none."""

    operations: Operations = Field(default_factory=list, description="on the run itself, in order")
    parent_operations: Operations = Field(
        default_factory=list, description="on the run's parent (the run itself if it has none)"
    )
    root_operations: Operations = Field(
        default_factory=list, description="on the run's root, the top of its tree (the run itself if it has no parent)"
    )


class ReplaceMetadataBody(StrictBody):
    metadata: dict[str, Any] = Field(description="the run's new metadata, whole (at most 256 KB as JSON)")


class AddTagsBody(StrictBody):
    tags: Annotated[list[Tag], Field(min_length=1, max_length=limits.MAX_TAGS)] = Field(
        description="tags to add; those the run has already are skipped"
    )


def _engine(request: Request) -> RunEngine:
    return request.app.state.engine


@router.post(
    "/runs/{run_id}/metadata",
    summary="Apply metadata operations to a run, its parent and its root (runners flush these)",
    responses=responses(404, 409, 413),
)
async def apply_operations(
    run_id: RunPath, body: MetadataOperationsBody, env: CurrentEnv, request: Request
) -> dict[str, Any]:
    metadata = await run_in_threadpool(
        _engine(request).metadata.update,
        env,
        run_id,
        [op.as_operation() for op in body.operations],
        [op.as_operation() for op in body.parent_operations],
        [op.as_operation() for op in body.root_operations],
    )
    return {"metadata": metadata}


@router.put("/runs/{run_id}/metadata", summary="Replace a run's metadata", responses=responses(404, 409, 413))
async def replace(run_id: RunPath, body: ReplaceMetadataBody, env: CurrentEnv, request: Request) -> dict[str, Any]:
    metadata = await run_in_threadpool(_engine(request).metadata.replace, env, run_id, body.metadata)
    return {"metadata": metadata}


@router.post(
    "/runs/{run_id}/tags", summary="Add tags to a run (at most 10 per run in all)", responses=responses(404, 409, 413)
)
async def add_tags(run_id: RunPath, body: AddTagsBody, env: CurrentEnv, request: Request) -> dict[str, Any]:
    tags = await run_in_threadpool(_engine(request).metadata.add_tags, env, run_id, body.tags)
    return {"tags": tags}
