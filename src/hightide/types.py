"""Shared vocabulary: JSON aliases, id types and small protocols. Standard library only."""

from __future__ import annotations

from typing import Any, NewType, TypeAlias

JSON: TypeAlias = Any
"""A value that survives ``json.dumps``/``json.loads`` unchanged."""
JSONObject: TypeAlias = dict[str, Any]

RunId = NewType("RunId", str)
EnvironmentId = NewType("EnvironmentId", str)
ProjectId = NewType("ProjectId", str)
WorkerId = NewType("WorkerId", str)
VersionId = NewType("VersionId", str)

Timestamp: TypeAlias = float
"""Seconds since the Unix epoch (UTC)."""

MAX_CLAIM_BATCH = 100
"""The most runs one claim may ask for (the worker protocol's limit, server and worker alike)."""
