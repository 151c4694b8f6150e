"""The one declared schema, shared by SQLite and PostgreSQL. Times are float seconds since the epoch."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

projects = Table(
    "projects",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("slug", String(128), nullable=False, unique=True),
    Column("name", String(256), nullable=False),
    Column("created_at", Float, nullable=False),
)

environments = Table(
    "environments",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("project_id", String(64), ForeignKey("projects.id"), nullable=False),
    Column("slug", String(128), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("concurrency_limit", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("project_id", "slug", name="uq_environments_project_slug"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("environment_id", String(64), ForeignKey("environments.id"), nullable=False),
    Column("key_hash", String(128), nullable=False, unique=True),
    Column("key_prefix", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
)

worker_versions = Table(
    "worker_versions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("environment_id", String(64), ForeignKey("environments.id"), nullable=False),
    Column("version", String(64), nullable=False),
    Column("manifest", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("environment_id", "version", name="uq_worker_versions_env_version"),
)

# The current definition of each task in an environment (from the newest registered version).
tasks = Table(
    "tasks",
    metadata,
    Column("environment_id", String(64), ForeignKey("environments.id"), primary_key=True),
    Column("task_id", String(256), primary_key=True),
    Column("version_id", String(64), nullable=False),
    Column("queue", String(256), nullable=False),
    Column("config", Text, nullable=False),  # JSON: retry, max_duration, ttl, machine, payload_schema
    Column("updated_at", Float, nullable=False),
)

queues = Table(
    "queues",
    metadata,
    Column("environment_id", String(64), ForeignKey("environments.id"), primary_key=True),
    Column("name", String(256), primary_key=True),
    Column("concurrency_limit", Integer),
    Column("paused", Boolean, nullable=False, default=False),
    Column("updated_at", Float, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("environment_id", String(64), ForeignKey("environments.id"), nullable=False),
    Column("task_id", String(256), nullable=False),
    Column("queue", String(256), nullable=False),
    Column("status", String(32), nullable=False),
    Column("payload", Text, nullable=False),
    Column("output", Text),
    Column("error", Text),
    Column("tags", Text, nullable=False),
    Column("metadata", Text, nullable=False),
    Column("idempotency_key", String(512)),
    Column("idempotency_key_expires_at", Float),
    Column("concurrency_key", String(256)),
    Column("priority", Float, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("retry", Text, nullable=False),
    Column("max_duration", Float),
    Column("attempt_count", Integer, nullable=False),
    Column("delay_until", Float),
    Column("ttl_expires_at", Float),
    Column("available_at", Float, nullable=False),
    # Claim order: earlier first, and `priority` seconds earlier than its queue time.
    Column("rank_at", Float, nullable=False),
    Column("lease_expires_at", Float),
    Column("worker_id", String(64)),
    Column("version", String(64)),
    Column("parent_run_id", String(64)),
    Column("root_run_id", String(64)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    UniqueConstraint("environment_id", "task_id", "idempotency_key", name="uq_runs_idempotency"),
)
Index("ix_runs_claim", runs.c.environment_id, runs.c.status, runs.c.rank_at)
Index("ix_runs_list", runs.c.environment_id, runs.c.created_at)
Index("ix_runs_status_lease", runs.c.status, runs.c.lease_expires_at)
Index("ix_runs_status_available", runs.c.status, runs.c.available_at)
Index("ix_runs_parent", runs.c.parent_run_id)

run_tags = Table(
    "run_tags",
    metadata,
    Column("run_id", String(64), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(256), primary_key=True),
    Column("environment_id", String(64), nullable=False),
)
Index("ix_run_tags_env_tag", run_tags.c.environment_id, run_tags.c.tag)

attempts = Table(
    "attempts",
    metadata,
    Column("run_id", String(64), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("status", String(32), nullable=False),
    Column("worker_id", String(64)),
    Column("version", String(64)),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("error", Text),
)

run_logs = Table(
    "run_logs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("time", Float, nullable=False),
    Column("level", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("attributes", Text, nullable=False),
)
Index("ix_run_logs_run", run_logs.c.run_id, run_logs.c.id)
