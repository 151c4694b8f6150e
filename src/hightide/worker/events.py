"""What a worker tells its command to print."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunEvent:
    """One line of what happened, for ``hightide dev`` / ``hightide worker`` to print."""

    kind: str  # "run" | "log" | "version" | "error"
    task_id: str = ""
    run_id: str = ""
    attempt: int = 0
    status: str = ""
    duration: float | None = None
    message: str = ""
    level: str = "info"
    time: float = field(default_factory=time.time)
    attributes: dict[str, Any] = field(default_factory=dict)  # of a log: logger.info("...", url=...)


EventSink = Callable[[RunEvent], None]
