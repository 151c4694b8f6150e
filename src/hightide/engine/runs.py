"""The run engine. Every state change goes through ``core.states.transition`` and then the store's
one conditional update, so a repeated or late request is rejected cleanly instead of applied twice.

Its parts: ``triggering.py`` (versions, trigger), ``execution.py`` (the worker protocol),
``control.py`` (cancel, replay, reschedule, time-driven changes), ``journal.py`` and ``tokens.py``
(durable operations, suspension, waitpoint tokens), ``traces.py`` (logs and traces), over ``base.py``.
"""

from __future__ import annotations

from hightide.engine.base import Clock, EngineSettings
from hightide.engine.control import Control
from hightide.engine.execution import Execution
from hightide.engine.journal import Journal
from hightide.engine.traces import Trace


class RunEngine(Journal, Control, Execution):
    """Everything that happens to runs. Methods are synchronous (they run in a thread pool) except
    the long-polls, which are async."""


__all__ = ["Clock", "EngineSettings", "RunEngine", "Trace"]
