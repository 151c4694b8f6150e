"""``locals``: values that live for one run, shared by its middleware, its hooks and the task.

>>> db = locals.create("db")
>>> async def with_db(payload, ctx, next):
...     locals.set(db, await connect())
...     try:
...         return await next()
...     finally:
...         await locals.get(db).close()
>>> @task(id="report", middleware=[with_db])
... async def report(payload: dict) -> int:
...     return await locals.get(db).count()

The runner starts each run with an empty store, so nothing leaks from one run into the next.
"""

from __future__ import annotations

import contextvars
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")
_MISSING: Any = object()


class LocalKey(Generic[T]):
    """A name for one value per run (from ``locals.create``)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<local {self.name!r}>"


_values: contextvars.ContextVar[dict[LocalKey[Any], Any] | None] = contextvars.ContextVar(
    "hightide_locals", default=None
)


class Locals:
    def create(self, name: str) -> LocalKey[Any]:
        """A key for a value per run; create it once, at import time."""
        return LocalKey(name)

    def set(self, key: LocalKey[T], value: T) -> T:
        """Set ``key``'s value for the run executing here; returns it."""
        store = _values.get()
        if store is None:
            raise RuntimeError(f"locals.set({key.name!r}): locals exist inside a run only")
        store[key] = value
        return value

    @overload
    def get(self, key: LocalKey[T]) -> T: ...
    @overload
    def get(self, key: LocalKey[T], default: T) -> T: ...

    def get(self, key: LocalKey[T], default: Any = _MISSING) -> Any:
        """``key``'s value in the run executing here (``default``, or ``KeyError`` if it has none)."""
        store = _values.get()
        if store is not None and key in store:
            return store[key]
        if default is not _MISSING:
            return default
        raise KeyError(f"local {key.name!r} is not set in this run (set it with locals.set)")


locals = Locals()


def start_run() -> contextvars.Token[dict[LocalKey[Any], Any] | None]:
    """Give the run about to execute an empty store (the runner calls it; ``end_run`` after)."""
    return _values.set({})


def end_run(token: contextvars.Token[dict[LocalKey[Any], Any] | None]) -> None:
    _values.reset(token)
