"""``store.environments``: projects, environments, keys, versions and tasks (their queues: ``queues.py``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from hightide.core.ids import new_id
from hightide.core.ratelimits import parse_rate_limit
from hightide.errors import AlreadyExistsError
from hightide.store import schema as t
from hightide.store.changes import Change, ChangeKind
from hightide.store.queues import declare_queue
from hightide.store.records import (
    ApiKey,
    DeclaredSchedule,
    Environment,
    TaskDefinition,
    Version,
    dumps,
    loads,
)
from hightide.store.schedules import sync_declared_schedules
from hightide.store.seam import Seam


class EnvironmentOps:
    def __init__(self, seam: Seam) -> None:
        self._seam = seam

    # -- projects, environments, keys ------------------------------------------------------
    def ensure_project(self, slug: str, now: float) -> str:
        """The id of project ``slug``, made if missing (servers starting together may race here)."""
        values = {"id": new_id("proj", now), "slug": slug, "name": slug, "created_at": now}
        with self._seam.write() as conn:
            self._seam.insert_missing(conn, t.projects, values, ["slug"])
            return str(conn.execute(select(t.projects.c.id).where(t.projects.c.slug == slug)).scalar_one())

    def ensure_environment(self, project_id: str, slug: str, kind: str, concurrency_limit: int, now: float) -> str:
        """The id of environment ``slug`` of a project, made if missing (racing servers: as above)."""
        values = {
            "id": new_id("env", now),
            "project_id": project_id,
            "slug": slug,
            "kind": kind,
            "concurrency_limit": concurrency_limit,
            "created_at": now,
        }
        with self._seam.write() as conn:
            self._seam.insert_missing(conn, t.environments, values, ["project_id", "slug"])
            e = t.environments
            return str(conn.execute(select(e.c.id).where(e.c.project_id == project_id, e.c.slug == slug)).scalar_one())

    def set_environment_concurrency(self, environment_id: str, limit: int) -> None:
        with self._seam.write_notify() as conn:
            conn.execute(
                update(t.environments).where(t.environments.c.id == environment_id).values(concurrency_limit=limit)
            )
            self._seam.publish(conn, Change(environment_id, kind=ChangeKind.ENVIRONMENT))

    def _env_select(self) -> Any:
        e, p = t.environments, t.projects
        return select(
            e.c.id, e.c.project_id, p.c.slug.label("project_slug"), e.c.slug, e.c.kind, e.c.concurrency_limit
        ).join(p, p.c.id == e.c.project_id)

    @staticmethod
    def _env(row: Any) -> Environment:
        return Environment(**dict(row._mapping))

    def get_environment(self, project_slug: str, env_slug: str) -> Environment | None:
        with self._seam.read() as conn:
            row = conn.execute(
                self._env_select().where(t.projects.c.slug == project_slug, t.environments.c.slug == env_slug)
            ).first()
        return self._env(row) if row else None

    def get_environment_by_id(self, environment_id: str) -> Environment | None:
        with self._seam.read() as conn:
            row = conn.execute(self._env_select().where(t.environments.c.id == environment_id)).first()
        return self._env(row) if row else None

    def add_api_key(
        self, environment_id: str, key_hash: str, key_prefix: str, now: float, last4: str | None = None
    ) -> str:
        key_id = new_id("key", now)
        with self._seam.write() as conn:
            conn.execute(
                insert(t.api_keys).values(
                    id=key_id,
                    environment_id=environment_id,
                    key_hash=key_hash,
                    key_prefix=key_prefix,
                    key_last4=last4,
                    created_at=now,
                )
            )
        return key_id

    def revoke_api_key(self, key_id: str, now: float) -> bool:
        """Revoke a secret key; ``False`` if there is no such key or it was revoked already."""
        k = t.api_keys
        with self._seam.write_notify() as conn:
            row = conn.execute(
                update(k)
                .where(k.c.id == key_id, k.c.revoked_at.is_(None))
                .values(revoked_at=now)
                .returning(k.c.environment_id)
            ).first()
            if row is not None:
                self._seam.publish(conn, Change(row.environment_id, kind=ChangeKind.KEY_REVOKED))
        return row is not None

    def list_api_keys(self, environment_id: str) -> list[ApiKey]:
        """The environment's keys (never their hashes), the live ones first, newest first."""
        k = t.api_keys
        stmt = (
            select(k.c.id, k.c.environment_id, k.c.key_prefix, k.c.created_at, k.c.revoked_at, k.c.key_last4)
            .where(k.c.environment_id == environment_id)
            .order_by(k.c.revoked_at.is_not(None), k.c.created_at.desc(), k.c.id.desc())
        )
        with self._seam.read() as conn:
            return [
                ApiKey(row.id, row.environment_id, row.key_prefix, row.created_at, row.revoked_at, row.key_last4)
                for row in conn.execute(stmt)
            ]

    def environment_for_key(self, key_hash: str) -> Environment | None:
        k = t.api_keys
        with self._seam.read() as conn:
            row = conn.execute(
                self._env_select()
                .join(k, k.c.environment_id == t.environments.c.id)
                .where(k.c.key_hash == key_hash, k.c.revoked_at.is_(None))
            ).first()
        return self._env(row) if row else None

    # -- versions, tasks, queues -----------------------------------------------------------
    def register_version(
        self,
        environment_id: str,
        date_prefix: str,
        manifest: dict[str, Any],
        now: float,
        schedules: Sequence[DeclaredSchedule] | None = None,
    ) -> Version:
        """Record a new version ``{date_prefix}.N`` and make its tasks the current definitions;
        with ``schedules``, make them the environment's declarative schedules (``None``: leave them)."""
        with self._seam.write_notify() as conn:
            count = conn.execute(
                select(func.count())
                .select_from(t.worker_versions)
                .where(
                    t.worker_versions.c.environment_id == environment_id,
                    t.worker_versions.c.version.like(f"{date_prefix}.%"),
                )
            ).scalar_one()
            version = Version(
                id=new_id("ver", now),
                environment_id=environment_id,
                version=f"{date_prefix}.{count + 1}",
                manifest=manifest,
                created_at=now,
            )
            conn.execute(
                insert(t.worker_versions).values(
                    id=version.id,
                    environment_id=environment_id,
                    version=version.version,
                    manifest=dumps(manifest),
                    created_at=now,
                )
            )
            for task in manifest.get("tasks", []):
                self._upsert_task(conn, environment_id, version.id, task, now)
            if schedules is not None:
                sync_declared_schedules(conn, environment_id, schedules, now)
            self._seam.publish(conn, Change(environment_id, kind=ChangeKind.VERSION))
        return version

    def _upsert_task(self, conn: Connection, env_id: str, version_id: str, task: dict[str, Any], now: float) -> None:
        queue = task["queue"]
        conn.execute(delete(t.tasks).where(t.tasks.c.environment_id == env_id, t.tasks.c.task_id == task["id"]))
        conn.execute(
            insert(t.tasks).values(
                environment_id=env_id,
                task_id=task["id"],
                version_id=version_id,
                queue=queue["name"],
                config=dumps(task),
                updated_at=now,
            )
        )
        rate = parse_rate_limit(queue.get("rate_limit"), "queue.rate_limit")  # checked by the manifest's check
        declare_queue(self._seam, conn, env_id, queue["name"], queue.get("concurrency_limit"), rate, now)

    def get_version(self, version_id: str) -> Version | None:
        v = t.worker_versions
        with self._seam.read() as conn:
            row = conn.execute(select(v).where(v.c.id == version_id)).first()
        if row is None:
            return None
        m = row._mapping
        return Version(m["id"], m["environment_id"], m["version"], loads(m["manifest"]), m["created_at"])

    def get_task(self, environment_id: str, task_id: str) -> TaskDefinition | None:
        with self._seam.read() as conn:
            row = conn.execute(
                select(t.tasks).where(t.tasks.c.environment_id == environment_id, t.tasks.c.task_id == task_id)
            ).first()
        if row is None:
            return None
        m = row._mapping
        return TaskDefinition(m["environment_id"], m["task_id"], m["version_id"], m["queue"], loads(m["config"]))

    def current_version(self, environment_id: str) -> Version | None:
        """The environment's newest registered version (its tasks are the current definitions)."""
        v = t.worker_versions
        with self._seam.read() as conn:
            row = conn.execute(
                select(v).where(v.c.environment_id == environment_id).order_by(v.c.created_at.desc(), v.c.id.desc())
            ).first()
        if row is None:
            return None
        m = row._mapping
        return Version(m["id"], m["environment_id"], m["version"], loads(m["manifest"]), m["created_at"])

    def tasks_of_version(self, environment_id: str, version_id: str) -> list[TaskDefinition]:
        """The tasks whose current definition comes from ``version_id``, by task id."""
        k = t.tasks
        stmt = select(k).where(k.c.environment_id == environment_id, k.c.version_id == version_id).order_by(k.c.task_id)
        with self._seam.read() as conn:
            rows = conn.execute(stmt).all()
        return [
            TaskDefinition(m["environment_id"], m["task_id"], m["version_id"], m["queue"], loads(m["config"]))
            for m in (row._mapping for row in rows)
        ]

    # -- server secrets --------------------------------------------------------------------
    def secret(self, name: str, make: Callable[[], str], now: float) -> str:
        """The secret called ``name``, created with ``make()`` the first time (once, even when
        several servers ask at once)."""
        s = t.secrets
        with self._seam.read() as conn:
            value = conn.execute(select(s.c.value).where(s.c.name == name)).scalar()
        if value is not None:
            return str(value)
        try:
            with self._seam.write() as conn:
                conn.execute(insert(s).values(name=name, value=make(), created_at=now))
        except AlreadyExistsError:
            pass  # another server created it first: use theirs
        with self._seam.read() as conn:
            return str(conn.execute(select(s.c.value).where(s.c.name == name)).scalar_one())
