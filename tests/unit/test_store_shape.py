"""The store is composed, not stacked (STYLE.md): a facade holding one object per group of
operations, each built on the one ``Seam``, so that a method is found by its service."""

from pathlib import Path

from hightide.store import Store, open_store
from hightide.store.claims import ClaimOps
from hightide.store.environments import EnvironmentOps
from hightide.store.live import LiveOps
from hightide.store.metadata import MetadataOps
from hightide.store.releases import ReleaseOps
from hightide.store.runs import RunOps
from hightide.store.seam import Seam
from hightide.store.telemetry import TelemetryOps
from hightide.store.users import UserOps
from hightide.store.waitpoints import WaitpointOps

GROUPS = {
    "environments": EnvironmentOps,
    "runs": RunOps,
    "claims": ClaimOps,
    "releases": ReleaseOps,
    "waitpoints": WaitpointOps,
    "telemetry": TelemetryOps,
    "metadata": MetadataOps,
    "users": UserOps,
    "live": LiveOps,
}


def test_groups_inherit_nothing() -> None:
    for group in GROUPS.values():
        assert group.__mro__ == (group, object), f"{group.__name__} should hold its collaborators, not inherit them"


def test_the_facade_holds_lifecycle_and_notifications_only() -> None:
    public = {name for name in vars(Store) if not name.startswith("_")}
    assert public == {"engine", "dialect", "origin", "migrate", "start", "close", "add_listener", "remove_listener"}


def test_every_group_shares_the_stores_one_seam(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "shape.db"))
    try:
        assert isinstance(store.seam, Seam)
        for name, group in GROUPS.items():
            ops = getattr(store, name)
            assert isinstance(ops, group)
            assert ops._seam is store.seam
        assert store.waitpoints._runs is store.runs
    finally:
        store.close()
