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
    false,
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
    Column("key_last4", String(8)),  # none for keys made before 0007
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
    Column("concurrency_limit", Integer),  # as its tasks declare it (None: no limit of its own)
    Column("paused", Boolean, nullable=False, default=False),
    Column("updated_at", Float, nullable=False),
    Column("concurrency_limit_override", Integer),  # set by a user; wins over the declared limit
    Column("paused_at", Float),
    Column("overridden_at", Float),
    # A rate limit its tasks declare (core/ratelimits.py): at most rate_limit starts per rate_period
    # seconds, per concurrency key when rate_per_key. rate_free_at: when a full window next frees.
    Column("rate_limit", Integer),
    Column("rate_period", Float),
    Column("rate_per_key", Boolean, nullable=False, default=False, server_default=false()),
    Column("rate_free_at", Float),
)

# The starts a rate-limited queue's window counts (concurrency_key: for a per-key limit only); the
# claim adds them and deletes those past the window.
queue_starts = Table(
    "queue_starts",
    metadata,
    Column("environment_id", String(64), nullable=False),
    Column("queue", String(256), nullable=False),
    Column("concurrency_key", String(256)),
    Column("started_at", Float, nullable=False),
    Index("ix_queue_starts_window", "environment_id", "queue", "concurrency_key", "started_at"),
)

# Cron schedules (docs/schedules.md): ``declarative`` ones a task declares (synced when a version
# registers, one per task), ``imperative`` ones made from the API. ``next_tick_at`` is the tick the
# scheduler fires next: firing advances it with a conditional update, so each tick fires once.
schedules = Table(
    "schedules",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("environment_id", String(64), ForeignKey("environments.id"), nullable=False),
    Column("task_id", String(256), nullable=False),
    Column("cron", String(256), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("external_id", String(512)),
    Column("deduplication_key", String(512)),
    Column("kind", String(16), nullable=False),  # declarative | imperative
    Column("active", Boolean, nullable=False),
    Column("next_tick_at", Float, nullable=False),
    Column("last_tick_at", Float),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # NULLs are distinct: only schedules with a key are unique by it.
    UniqueConstraint("environment_id", "deduplication_key", name="uq_schedules_deduplication_key"),
)
Index("ix_schedules_list", schedules.c.environment_id, schedules.c.created_at, schedules.c.id)
Index("ix_schedules_due", schedules.c.active, schedules.c.next_tick_at)

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
    Column("debounce_key", String(256)),  # set while triggers with the same key may push it back
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
    # Set when a WAITING run is queued again: its next claim continues the same attempt (a replay).
    Column("resuming", Boolean, nullable=False, server_default=false()),
    # Bumped by every claim: names one execution of the run (an attempt spans several after resumes),
    # so that a late or repeated report of an earlier execution is refused.
    Column("executions", Integer, nullable=False, server_default="0"),
    # W3C trace context (docs/tracing.md): the run's trace (its parent's, for a child run), the
    # run's own span and the span it hangs under (a trigger in the parent run, or the caller's span).
    Column("trace_id", String(32)),
    Column("span_id", String(16)),
    Column("parent_span_id", String(16)),
    # The claim request (its id, chosen by the worker) that took the run while it is EXECUTING: a
    # retried claim gets the same runs back, and a claim the worker gave up on is released.
    Column("claim_id", String(64)),
    # The machine preset the run's next attempt runs on: the trigger's, else its task's (0014); an
    # out-of-memory retry moves it to the preset the task's retry names.
    Column("machine", String(32)),
    # Final hooks owed (on_failure, on_complete of a CRASHED or TIMED_OUT run, 0016): due from this
    # time (a worker that takes them holds them until it; NULL: none owed).
    Column("hooks_owed_until", Float),
    UniqueConstraint("environment_id", "task_id", "idempotency_key", name="uq_runs_idempotency"),
)
Index("ix_runs_claim", runs.c.environment_id, runs.c.status, runs.c.rank_at)
# Runs owing final hooks: a partial index, so that the runs owing none (all but a few) cost it nothing.
Index(
    "ix_runs_hooks_owed",
    runs.c.environment_id,
    runs.c.hooks_owed_until,
    postgresql_where=runs.c.hooks_owed_until.isnot(None),
    sqlite_where=runs.c.hooks_owed_until.isnot(None),
)
# The claim's turns of keyed runs: each (queue, concurrency key)'s ready runs in claim order (0009).
Index(
    "ix_runs_claim_key",
    runs.c.environment_id,
    runs.c.status,
    runs.c.queue,
    runs.c.concurrency_key,
    runs.c.rank_at,
    runs.c.id,
)
# The list of runs, newest first (created_at, then id), unfiltered and per filter (0006).
Index("ix_runs_list", runs.c.environment_id, runs.c.created_at, runs.c.id)
Index("ix_runs_list_status", runs.c.environment_id, runs.c.status, runs.c.created_at, runs.c.id)
Index("ix_runs_list_task", runs.c.environment_id, runs.c.task_id, runs.c.created_at, runs.c.id)
Index("ix_runs_list_status_task", runs.c.environment_id, runs.c.status, runs.c.task_id, runs.c.created_at, runs.c.id)
Index("ix_runs_list_version", runs.c.environment_id, runs.c.version, runs.c.created_at, runs.c.id)
Index("ix_runs_queue_counts", runs.c.environment_id, runs.c.status, runs.c.queue)
Index("ix_runs_status_lease", runs.c.status, runs.c.lease_expires_at)
Index("ix_runs_status_available", runs.c.status, runs.c.available_at)
Index("ix_runs_parent", runs.c.parent_run_id)
Index("ix_runs_trace", runs.c.trace_id)
Index("ix_runs_debounce", runs.c.environment_id, runs.c.task_id, runs.c.debounce_key)

# Claim requests that took runs, and claims their worker gave up on (``released_at``), kept for an
# hour or more (``store/claims.py``): a claim id seen again returns what it took, or nothing.
claims = Table(
    "claims",
    metadata,
    Column("environment_id", String(64), ForeignKey("environments.id"), primary_key=True),
    Column("id", String(64), primary_key=True),  # the worker's: unique within its environment only
    Column("worker_id", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("released_at", Float),
)
Index("ix_claims_created", claims.c.created_at)

run_tags = Table(
    "run_tags",
    metadata,
    Column("run_id", String(64), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(256), primary_key=True),
    Column("environment_id", String(64), nullable=False),
)
Index("ix_run_tags_env_tag", run_tags.c.environment_id, run_tags.c.tag, run_tags.c.run_id)

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
    Column("span_id", String(16)),  # the span that was current when it was logged
)
Index("ix_run_logs_run", run_logs.c.run_id, run_logs.c.id)

# Spans recorded inside runs (steps, triggers, waits, `logger.trace`, instrumentations). Run and
# attempt spans are not stored: the engine derives them from `runs` and `attempts`. A wait that
# suspended its run is stored open (`end_time` NULL) with its journal position in `seq`: its end is
# when the waitpoints of that journal entry resolved.
spans = Table(
    "spans",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trace_id", String(32), nullable=False),
    Column("span_id", String(16), nullable=False),
    Column("parent_span_id", String(16)),
    Column("run_id", String(64), ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("name", String(512), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("seq", String(128)),
    Column("start_time", Float, nullable=False),
    Column("end_time", Float),
    Column("status", String(16), nullable=False),
    Column("attributes", Text, nullable=False),
    Column("events", Text, nullable=False),
)
Index("ix_spans_trace", spans.c.trace_id, spans.c.start_time)
Index("ix_spans_run", spans.c.run_id)

# What a run can wait for. kind: DURATION (resume_at), RUN (the run `run_id` finishing) or TOKEN
# (completed through the API or its callback URL, or TIMED_OUT at timeout_at).
# status: WAITING, COMPLETED, TIMED_OUT, or CANCELED (with the run that created it).
waitpoints = Table(
    "waitpoints",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("environment_id", String(64), ForeignKey("environments.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("run_id", String(64)),
    Column("owner_run_id", String(64)),
    Column("resume_at", Float),
    Column("timeout_at", Float),
    Column("output", Text),
    Column("tags", Text, nullable=False),
    Column("idempotency_key", String(512)),
    Column("idempotency_key_expires_at", Float),
    Column("created_at", Float, nullable=False),
    Column("completed_at", Float),
    UniqueConstraint("environment_id", "kind", "idempotency_key", name="uq_waitpoints_idempotency"),
)
Index("ix_waitpoints_run", waitpoints.c.run_id, waitpoints.c.status)
Index("ix_waitpoints_owner", waitpoints.c.owner_run_id)
Index("ix_waitpoints_due_resume", waitpoints.c.status, waitpoints.c.resume_at)
Index("ix_waitpoints_due_timeout", waitpoints.c.status, waitpoints.c.timeout_at)
Index("ix_waitpoints_list", waitpoints.c.environment_id, waitpoints.c.kind, waitpoints.c.created_at)

# What a suspended run waits for: a link is removed when its waitpoint resolves; the run is queued
# again when it has none left.
run_waitpoints = Table(
    "run_waitpoints",
    metadata,
    Column("run_id", String(64), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("waitpoint_id", String(64), ForeignKey("waitpoints.id", ondelete="CASCADE"), primary_key=True),
)
Index("ix_run_waitpoints_waitpoint", run_waitpoints.c.waitpoint_id)

# Each run's durable operations in call order (see docs/durable-execution.md). The primary key makes
# two executions racing to record one position conflict: the first one's entry stands.
run_journal = Table(
    "run_journal",
    metadata,
    Column("run_id", String(64), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    # The position: "3" is the 4th operation of the task's own code, "t1/0" the 1st of the 2nd task it
    # started (asyncio.gather): per-task counters keep positions the same whatever finishes first.
    Column("seq", String(128), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("name", String(256), nullable=False),
    Column("result", Text),
    Column("waitpoint_ids", Text, nullable=False),
    Column("attempt", Integer, nullable=False, server_default="1"),  # the attempt that recorded it
    Column("created_at", Float, nullable=False),
)

# Server-side secrets, created on first use (the key that signs token callback URLs).
# Bulk actions: cancel or replay many runs (by ids or by a filter) in the background, page by page;
# `cursor` is where the next page starts, `lease_until` keeps two servers off one action at once.
bulk_actions = Table(
    "bulk_actions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("environment_id", String(64), ForeignKey("environments.id"), nullable=False),
    Column("action", String(16), nullable=False),
    Column("selection", Text, nullable=False),  # JSON: {"ids": [...]} or a filter, with its time bound
    Column("status", String(16), nullable=False),
    Column("total", Integer, nullable=False),
    Column("processed", Integer, nullable=False),
    Column("succeeded", Integer, nullable=False),
    Column("skipped", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("failures", Text, nullable=False),  # JSON: the first few [run id, message]
    Column("cursor", String(256)),
    Column("lease_until", Float),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("finished_at", Float),
)
Index("ix_bulk_actions_status", bulk_actions.c.status, bulk_actions.c.created_at)
Index("ix_bulk_actions_list", bulk_actions.c.environment_id, bulk_actions.c.created_at, bulk_actions.c.id)

# Alerts: webhooks an environment's events are POSTed to, signed with the webhook's secret.
alerts = Table(
    "alerts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("environment_id", String(64), ForeignKey("environments.id"), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("events", Text, nullable=False),  # JSON: ["run.failed"]
    Column("secret", String(128), nullable=False),
    Column("description", String(256)),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index("ix_alerts_list", alerts.c.environment_id, alerts.c.created_at, alerts.c.id)

# One event to one webhook, inserted in the transaction that made the event (a run's final failure),
# tried until the receiver answers 2xx or the tries run out; `log` keeps its last tries.
alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("alert_id", String(64), ForeignKey("alerts.id"), nullable=False),
    Column("environment_id", String(64), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("event", String(32), nullable=False),
    Column("run_id", String(64)),
    Column("status", String(16), nullable=False),  # PENDING | DELIVERED | FAILED
    Column("tries", Integer, nullable=False),
    Column("next_try_at", Float),
    Column("lease_until", Float),
    Column("lease_owner", String(64)),
    Column("body", Text),  # the JSON sent, fixed at the first try
    Column("log", Text, nullable=False),  # JSON: [{"at", "status_code", "error", "duration_ms"}]
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("delivered_at", Float),
)
Index("ix_alert_deliveries_due", alert_deliveries.c.status, alert_deliveries.c.next_try_at)
Index("ix_alert_deliveries_list", alert_deliveries.c.alert_id, alert_deliveries.c.created_at, alert_deliveries.c.id)

secrets = Table(
    "secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
    Column("created_at", Float, nullable=False),
)

# People who sign in to the dashboard. Admins see every project and manage users; a member sees the
# projects listed for them in `project_members`.
users = Table(
    "users",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),  # stored lower-cased
    Column("is_admin", Boolean, nullable=False, server_default=false()),
    Column("created_at", Float, nullable=False),
)

project_members = Table(
    "project_members",
    metadata,
    Column("project_id", String(64), ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("created_at", Float, nullable=False),
)
Index("ix_project_members_user", project_members.c.user_id)

# One-time login links: only the SHA-256 of the token is stored. `used_at` is set by the one
# conditional update that redeems it, so a link works once even when two browsers race.
login_links = Table(
    "login_links",
    metadata,
    Column("token_hash", String(128), primary_key=True),
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float),
)
Index("ix_login_links_user", login_links.c.user_id)

# Dashboard sessions: only the SHA-256 of the cookie's value is stored. A session ends at
# `expires_at`, after a week without use (`last_seen_at`), or when it is signed out (deleted).
dashboard_sessions = Table(
    "dashboard_sessions",
    metadata,
    Column("token_hash", String(128), primary_key=True),
    Column("user_id", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("last_seen_at", Float, nullable=False),
)
Index("ix_dashboard_sessions_user", dashboard_sessions.c.user_id)
