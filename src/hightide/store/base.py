"""``Store``: the one storage seam with named operations, written once in SQLAlchemy Core.

Subclasses (``sqlite.py``, ``postgres.py``) override only what really differs: how a write
transaction starts, how claiming locks, how wake-ups travel between processes, and how driver
errors map to Hightide errors (the hooks in ``seam.py``).
"""

from __future__ import annotations

from hightide.store.claims import ClaimOps
from hightide.store.environments import EnvironmentOps
from hightide.store.releases import ReleaseOps
from hightide.store.seam import Listener
from hightide.store.telemetry import TelemetryOps
from hightide.store.waitpoints import WaitpointOps


class Store(EnvironmentOps, WaitpointOps, ReleaseOps, ClaimOps, TelemetryOps):
    """Named storage operations. Every method is one transaction unless it says otherwise."""


__all__ = ["Listener", "Store"]
