"""The run engine: a small facade over its services, each a class with its collaborators named.

| service | file | what it does |
|---|---|---|
| ``core`` | ``base.py`` | store, settings, clock, wake-ups; reading runs; the one way to change a run |
| ``triggering`` | ``triggering.py`` | versions and their tasks; trigger (validate, insert runs) |
| ``execution`` | ``execution.py`` | the worker protocol: claim, release, heartbeat, report |
| ``control`` | ``control.py`` | cancel, replay, reschedule; the time-driven changes of the scheduler |
| ``journal`` | ``journal.py`` | durable operations, handing journals back, suspensions |
| ``tokens`` | ``tokens.py`` | waitpoint tokens |
| ``traces`` | ``traces.py`` | logs and traces |
| ``metadata`` | ``metadata.py`` | runs' metadata operations (own, parent, root) and tags |
| ``queues`` | ``queues.py`` | queues with their runs now; pause, resume, concurrency limit overrides |
| ``bulk`` | ``bulk.py`` | bulk actions: cancel or replay many runs in the background, with progress |
| ``retention`` | ``retention.py`` | deleting finished runs past the retention period, in small batches |
| ``schedules`` | ``schedules.py`` | cron schedules (imperative and declarative); firing their ticks, each once |
| ``alerts`` | ``alerts.py`` | webhooks for ``run.failed`` and their deliveries (sent by the server) |
| ``public_tokens`` | ``public_tokens.py`` | signed, read-only public access tokens |
| ``realtime`` | ``realtime.py`` | the hub: live run states for subscribers, from the store's changes |

Every state change goes through ``core.states.transition`` and then one conditional update of the
store, so a repeated or late request is rejected cleanly instead of applied twice. Methods are
synchronous (they run in a thread pool) except the long-polls, which are async.
"""

from __future__ import annotations

import asyncio
import time

from hightide.engine.alerts import Alerts
from hightide.engine.base import Clock, EngineCore, EngineSettings
from hightide.engine.bulk import BulkActions
from hightide.engine.control import Control
from hightide.engine.execution import Execution
from hightide.engine.journal import Journal
from hightide.engine.metadata import Metadata
from hightide.engine.notify import Notifier
from hightide.engine.public_tokens import PublicTokens
from hightide.engine.queues import Queues
from hightide.engine.realtime import RealtimeHub
from hightide.engine.retention import Retention
from hightide.engine.schedules import Schedules
from hightide.engine.tokens import Tokens
from hightide.engine.traces import Trace, Traces
from hightide.engine.triggering import Triggering
from hightide.store import Store


class RunEngine:
    """Everything that happens to runs, by service: ``engine.triggering.trigger(...)``,
    ``engine.execution.claim(...)``, ``engine.control.cancel(...)``, ``engine.core.get_run(...)``."""

    def __init__(self, store: Store, settings: EngineSettings | None = None, clock: Clock = time.time) -> None:
        self.core = EngineCore(store, settings, clock)
        self.triggering = Triggering(self.core)
        self.tokens = Tokens(self.core)
        self.traces = Traces(self.core)
        self.journal = Journal(self.core, self.triggering, self.tokens)
        self.execution = Execution(self.core, self.triggering, self.journal, self.traces)
        self.control = Control(self.core, self.triggering)
        self.metadata = Metadata(self.core)
        self.queues = Queues(self.core)
        self.retention = Retention(self.core)
        self.bulk = BulkActions(self.core, self.control)
        self.schedules = Schedules(self.core, self.triggering, self.control)
        self.alerts = Alerts(self.core)
        self.public_tokens = PublicTokens(self.core)
        self.realtime = RealtimeHub(self.core)

    @property
    def store(self) -> Store:
        return self.core.store

    @property
    def settings(self) -> EngineSettings:
        return self.core.settings

    @property
    def clock(self) -> Clock:
        return self.core.clock

    def attach(self, loop: asyncio.AbstractEventLoop) -> Notifier:
        """Route the store's change events to long-polls running on ``loop`` and to the caches."""
        self.store.add_listener(self.triggering.forget_changed)
        self.realtime.attach(loop)
        return self.core.attach(loop)

    def stop_polling(self) -> None:
        """End long-polls and realtime streams now (server shutdown), so that connections can close at once."""
        self.core.stop_polling()
        self.realtime.close()

    def detach(self) -> None:
        self.realtime.detach()
        self.core.detach()
        self.store.remove_listener(self.triggering.forget_changed)


__all__ = ["Clock", "EngineSettings", "RunEngine", "Trace"]
