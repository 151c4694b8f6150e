"""Middleware: one chain around a run, composed once per task (global middleware outside the
task's own, the task's hooks innermost, then the task's function).

>>> async def timing(payload, ctx, next):
...     started = time.monotonic()
...     try:
...         return await next()
...     finally:
...         logger.info("took", seconds=time.monotonic() - started)

A middleware may run code before and after ``next()``, replace the result, or raise; it must
call ``next()`` at most once.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from hightide.errors import ConfigError

Next = Callable[[], Awaitable[Any]]
Middleware = Callable[[Any, Any, Next], Awaitable[Any]]
"""``async def mw(payload, ctx, next) -> result``."""
Handler = Callable[[Any, Any], Awaitable[Any]]
"""The run as a chain sees it: ``await handler(payload, ctx)``."""


def check_middleware(fn: Any, where: str) -> Middleware:
    """``fn`` if it is an ``async def (payload, ctx, next)``; ``ConfigError`` at import otherwise."""
    if not inspect.iscoroutinefunction(fn):
        raise ConfigError(f"{where}: middleware must be an `async def mw(payload, ctx, next)`, got {fn!r}")
    try:
        inspect.signature(fn).bind(None, None, None)
    except TypeError:
        raise ConfigError(f"{where}: middleware {fn.__qualname__} must take (payload, ctx, next)") from None
    return fn


def compose(middleware: Sequence[Middleware], handler: Handler) -> Handler:
    """The one function that runs ``middleware`` (first = outermost) around ``handler``."""
    for mw in reversed(middleware):
        handler = _layer(mw, handler)
    return handler


def _layer(mw: Middleware, inner: Handler) -> Handler:
    @functools.wraps(mw)
    async def layer(payload: Any, ctx: Any) -> Any:
        called = False

        async def next() -> Any:
            nonlocal called
            if called:
                raise RuntimeError(f"middleware {mw.__qualname__} called next() twice")
            called = True
            return await inner(payload, ctx)

        return await mw(payload, ctx, next)

    return layer
