"""Retention: finished runs are deleted, with their logs, spans and journal, once they are older
than ``EngineSettings.retention`` (30 days by default; ``None`` keeps them for ever); so are alert
deliveries that are done (delivered or failed).

The scheduler calls ``purge`` now and then. It deletes in batches of ``BATCH`` runs, one short
transaction each, and at most ``MAX_BATCHES`` per call, so that it never holds the database long:
a backlog (a first start with a long history, or a shorter retention) is worked off over several
passes. Several servers may purge at once: a run is deleted once, by whichever gets to it."""

from __future__ import annotations

from hightide.engine.base import EngineCore

BATCH = 200
MAX_BATCHES = 10


class Retention:
    def __init__(self, core: EngineCore) -> None:
        self.core = core
        self.store = core.store

    def purge(self, max_batches: int = MAX_BATCHES) -> int:
        """Delete up to ``max_batches`` batches of finished runs past the retention, and as many of
        alert deliveries; how many rows went."""
        keep = self.core.settings.retention
        if keep is None:
            return 0
        cutoff = self.core.clock() - keep
        deleted = 0
        retention = self.store.retention
        for find, remove in (
            (retention.expired_runs, retention.delete_runs),
            (retention.expired_deliveries, retention.delete_deliveries),
        ):
            for _ in range(max_batches):
                ids = find(cutoff, BATCH)
                if not ids:
                    break
                deleted += remove(ids)
                if len(ids) < BATCH:
                    break
        return deleted
