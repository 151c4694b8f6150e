"""queues: rate limits; queue_starts: the starts they count

A queue may declare a rate limit (at most ``rate_limit`` runs start in any window of
``rate_period`` seconds, per concurrency key when ``rate_per_key``). The claim records each start
of a rate-limited queue's run in ``queue_starts`` and counts those in the window (deleting older
ones as it goes); a queue whose window is full gets ``rate_free_at``, when a start frees, for the
scheduler to wake its claimers then.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 06:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("queues") as batch:
        batch.add_column(sa.Column("rate_limit", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("rate_period", sa.Float(), nullable=True))
        batch.add_column(sa.Column("rate_per_key", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("rate_free_at", sa.Float(), nullable=True))
    op.create_table(
        "queue_starts",
        sa.Column("environment_id", sa.String(64), nullable=False),
        sa.Column("queue", sa.String(256), nullable=False),
        sa.Column("concurrency_key", sa.String(256), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=False),
    )
    op.create_index(
        "ix_queue_starts_window", "queue_starts", ["environment_id", "queue", "concurrency_key", "started_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_queue_starts_window", table_name="queue_starts")
    op.drop_table("queue_starts")
    with op.batch_alter_table("queues") as batch:
        batch.drop_column("rate_free_at")
        batch.drop_column("rate_per_key")
        batch.drop_column("rate_period")
        batch.drop_column("rate_limit")
