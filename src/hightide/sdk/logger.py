"""``logger``: structured run logs. Inside a run, records are stored with the run (and printed by
``hightide dev``); outside a run they go to the standard ``logging`` module."""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

from opentelemetry.trace import Span

from hightide.sdk.context import current_context
from hightide.sdk.tracing import span

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
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or infinities
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    return repr(value)


def _attribute(value: Any) -> Any:
    """OpenTelemetry attributes are scalars or lists of one scalar type; anything else as JSON."""
    if isinstance(value, str | int | float | bool):
        return value
    return json.dumps(_jsonable(value))


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
    def trace(self, name: str, **attributes: Any) -> Iterator[Span]:
        """A span around a block, in the run's trace (an OpenTelemetry span: ``set_attribute``,
        ``add_event``). An exception that leaves the block marks it as an error.

        >>> with logger.trace("fetch-user", user_id=42) as span:
        ...     user = await fetch_user(42)
        ...     span.set_attribute("user.plan", user.plan)
        """
        with span(name, "span", {k: _attribute(v) for k, v in attributes.items()}) as current:
            yield current


logger = Logger()
