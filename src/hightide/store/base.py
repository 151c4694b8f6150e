"""``Store``: the one storage seam with named operations, written once in SQLAlchemy Core.

A small facade over one ``Seam`` (``seam.py``: the engine, transactions, change events and the
dialect hooks; ``SQLiteSeam`` in ``sqlite.py``, ``PostgresSeam`` in ``postgres.py``) and the groups
of operations built on it, one attribute each, so that a method is found by its service:
``store.runs.get_run(...)``, ``store.claims.claim_runs(...)``.
"""

from __future__ import annotations

from sqlalchemy import Engine

from hightide.store.alerts import AlertOps
from hightide.store.bulk import BulkOps
from hightide.store.claims import ClaimOps
from hightide.store.environments import EnvironmentOps
from hightide.store.hooks import HookOps
from hightide.store.live import LiveOps
from hightide.store.metadata import MetadataOps
from hightide.store.queues import QueueOps
from hightide.store.releases import ReleaseOps
from hightide.store.retention import RetentionOps
from hightide.store.runs import RunOps
from hightide.store.schedules import ScheduleOps
from hightide.store.seam import Listener, Seam
from hightide.store.telemetry import TelemetryOps
from hightide.store.users import UserOps
from hightide.store.waitpoints import WaitpointOps


class Store:
    """Named storage operations, by group. Every operation is one transaction unless it says otherwise.

    ``environments``: projects, environments, keys, versions and tasks. ``queues``: queues, their
    pause and concurrency limit override. ``runs``: insert,
    read, list and the one conditional update. ``claims``: claiming, leases and the runs whose time
    has come. ``releases``: runs given back unfinished. ``waitpoints``: journals, suspension,
    waitpoints and tokens. ``telemetry``: logs and spans. ``metadata``: runs' metadata operations and
    tags, applied under the run's row lock. ``users``: dashboard users, members, login links and
    sessions. ``live``: the reads of live views (realtime). ``retention``: deleting finished runs past
    the retention period. ``bulk``: bulk actions and their progress. ``schedules``: cron schedules and
    their firing, each tick once. ``alerts``: webhooks and their deliveries. ``hooks``: final hooks owed to crashed runs."""

    def __init__(self, seam: Seam) -> None:
        self.seam = seam
        self.environments = EnvironmentOps(seam)
        self.queues = QueueOps(seam)
        self.runs = RunOps(seam)
        self.claims = ClaimOps(seam)
        self.releases = ReleaseOps(seam)
        self.waitpoints = WaitpointOps(seam, self.runs)
        self.schedules = ScheduleOps(seam, self.runs)
        self.telemetry = TelemetryOps(seam)
        self.metadata = MetadataOps(seam)
        self.users = UserOps(seam)
        self.live = LiveOps(seam)
        self.retention = RetentionOps(seam)
        self.bulk = BulkOps(seam)
        self.alerts = AlertOps(seam)
        self.hooks = HookOps(seam)

    @property
    def engine(self) -> Engine:
        return self.seam.engine

    @property
    def dialect(self) -> str:
        return self.seam.dialect

    @property
    def origin(self) -> str:
        """Names this store in its notifications, so that it can skip its own."""
        return self.seam.origin

    # -- lifecycle -------------------------------------------------------------------------
    def migrate(self) -> None:
        """Bring the schema up to date (Alembic migrations)."""
        self.seam.migrate()

    def start(self) -> None:
        """Start background machinery (PostgreSQL's notification listener)."""
        self.seam.start()

    def close(self) -> None:
        self.seam.close()

    # -- notifications ---------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` with the changes of each committed transaction (see ``Listener``)."""
        self.seam.add_listener(listener)

    def remove_listener(self, listener: Listener) -> None:
        self.seam.remove_listener(listener)


__all__ = ["Listener", "Store"]
