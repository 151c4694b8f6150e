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

# The worker protocol's other batch limits, shared by the server's request models and the worker
# that fills them (which sends a longer list in several requests).
MAX_RELEASE_RUNS = 1000
"""The most runs one release may give back."""
MAX_RELEASE_CLAIMS = 100
"""The most claim ids one release may give back."""
MAX_REPORT_RESULTS = 1000
"""The most results one report (``/worker/complete``) may carry."""
MAX_REPORT_RECORDS = 5000
"""The most log records, and the most spans, one report may carry."""
MAX_CONCURRENCY = 1024
"""The most runs one worker may execute at once (``--concurrency``)."""
MAX_PREFETCH = 8192
"""The most runs one worker may claim ahead of its free slots (``--prefetch``)."""
MAX_HEARTBEAT_RUNS = MAX_CONCURRENCY + MAX_PREFETCH
"""The most runs one heartbeat may name: all a worker can hold."""
