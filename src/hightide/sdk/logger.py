"""``logger``: structured run logs. Inside a run, records are stored with the run (and printed by
``hightide dev``); outside a run they go to the standard ``logging`` module."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from hightide.sdk.context import current_context

Sink = Callable[[str, str, dict[str, Any]], None]
"""Receives (level, message, attributes) for the run executing in this process."""

_sink: Sink | None = None
_fallback = logging.getLogger("hightide.task")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


def set_sink(sink: Sink | None) -> None:
    """Used by the runner process to route records to its supervisor."""
    global _sink
    _sink = sink


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    return repr(value)


class Logger:
    def _emit(self, level: str, message: str, attributes: dict[str, Any]) -> None:
        attrs = _jsonable(attributes)
        if _sink is not None and current_context() is not None:
            _sink(level, str(message), attrs)
        else:
            _fallback.log(_LEVELS[level], "%s %s", message, attrs if attrs else "")

    def debug(self, message: str, **attributes: Any) -> None:
        self._emit("debug", message, attributes)

    def info(self, message: str, **attributes: Any) -> None:
        """``logger.info("Data fetched", bytes=1024)``"""
        self._emit("info", message, attributes)

    def warn(self, message: str, **attributes: Any) -> None:
        self._emit("warn", message, attributes)

    warning = warn

    def error(self, message: str, **attributes: Any) -> None:
        self._emit("error", message, attributes)

    @contextlib.contextmanager
    def trace(self, name: str, **attributes: Any) -> Iterator[dict[str, Any]]:
        """Time a block; its duration is logged when it ends. ``with logger.trace("fetch"): ...``"""
        span: dict[str, Any] = {"name": name, **attributes}
        start = time.perf_counter()
        try:
            yield span
        finally:
            span["duration_ms"] = round((time.perf_counter() - start) * 1000, 3)
            self._emit("info", f"span {name}", span)


logger = Logger()
