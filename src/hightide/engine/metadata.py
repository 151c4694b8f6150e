"""Run metadata and tags: operations sent by a run's runner (on itself, its parent and its root),
replacements from outside a run, and tags added to a run. The store applies them under the runs'
row locks; each applied change is a ``METADATA`` or ``TAGS`` change event, heard by live pages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hightide.core.limits import MAX_TAGS
from hightide.core.metadata import MetadataOperation, OperationType, Target, check_operation
from hightide.engine.base import EngineCore
from hightide.engine.payloads import check_size
from hightide.errors import NotFoundError
from hightide.store.metadata import MetadataChange
from hightide.store.records import Environment, Run

FIELDS = {Target.RUN: "operations", Target.PARENT: "parent_operations", Target.ROOT: "root_operations"}


class Metadata:
    """Changes of runs' metadata and tags."""

    def __init__(self, core: EngineCore) -> None:
        self.core = core
        self.store = core.store

    def update(
        self,
        env: Environment,
        run_id: str,
        operations: Sequence[MetadataOperation] = (),
        parent_operations: Sequence[MetadataOperation] = (),
        root_operations: Sequence[MetadataOperation] = (),
    ) -> dict[str, Any]:
        """Apply the operations, in one transaction, to the run's metadata, its parent's and its
        root's (a run with no parent is its own parent and root, as in Trigger.dev). Returns the
        run's metadata after them."""
        run = self.core.get_run(env, run_id)
        lists = {Target.RUN: operations, Target.PARENT: parent_operations, Target.ROOT: root_operations}
        changes = [
            MetadataChange(_target_id(run, target), tuple(_checked(ops, FIELDS[target])), target)
            for target, ops in lists.items()
            if ops
        ]
        if not changes:
            return run.metadata
        docs = self.store.metadata.apply_operations(env.id, changes, self.core.clock())
        return docs.get(run.id, run.metadata)

    def replace(self, env: Environment, run_id: str, metadata: dict[str, Any]) -> dict[str, Any]:
        """Replace the run's metadata (``runs.update_metadata`` from outside a run)."""
        return self.update(env, run_id, [MetadataOperation(OperationType.REPLACE, None, metadata)])

    def add_tags(self, env: Environment, run_id: str, tags: Sequence[str]) -> list[str]:
        """Add ``tags`` to the run (at most ``MAX_TAGS`` in all); returns all its tags."""
        every = self.store.metadata.add_tags(env.id, run_id, tags, MAX_TAGS, self.core.clock())
        if every is None:
            raise NotFoundError(f"run {run_id!r} not found in environment {env.slug!r}", details={"run": run_id})
        return every


def _target_id(run: Run, target: Target) -> str:
    if target is Target.PARENT:
        return run.parent_run_id or run.id
    if target is Target.ROOT:
        return run.root_run_id or run.parent_run_id or run.id
    return run.id


def _checked(ops: Sequence[MetadataOperation], field: str) -> list[MetadataOperation]:
    for i, op in enumerate(ops):
        where = f"{field}[{i}]"
        check_operation(op, where)
        if op.type is not OperationType.DELETE:
            # Plain JSON, not nested too deep. Its size counts in the whole document's, which the
            # store checks (a 422 naming the 256 KB limit), so it is not measured on its own here.
            check_size(op.value, _UNMEASURED, f"{where}.value")
    return list(ops)


_UNMEASURED = 1 << 62
