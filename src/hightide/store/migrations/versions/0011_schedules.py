"""schedules: cron schedules, declared by tasks or made from the API

Each row's ``next_tick_at`` is the tick fired next; firing advances it with a conditional update in
the transaction that inserts the run, so each tick fires once whatever the number of servers.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 02:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("environment_id", sa.String(64), sa.ForeignKey("environments.id"), nullable=False),
        sa.Column("task_id", sa.String(256), nullable=False),
        sa.Column("cron", sa.String(256), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("external_id", sa.String(512), nullable=True),
        sa.Column("deduplication_key", sa.String(512), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("next_tick_at", sa.Float(), nullable=False),
        sa.Column("last_tick_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("environment_id", "deduplication_key", name="uq_schedules_deduplication_key"),
    )
    op.create_index("ix_schedules_list", "schedules", ["environment_id", "created_at", "id"])
    op.create_index("ix_schedules_due", "schedules", ["active", "next_tick_at"])


def downgrade() -> None:
    op.drop_index("ix_schedules_due", table_name="schedules")
    op.drop_index("ix_schedules_list", table_name="schedules")
    op.drop_table("schedules")
