"""queues: a concurrency limit that overrides the declared one, and when a queue was paused or overridden

A queue's ``concurrency_limit`` stays what its tasks declare (a new version may change it);
``concurrency_limit_override``, set from the API, the CLI or the dashboard, wins over it until it is
reset. Neither the override nor ``paused`` is touched when a version registers.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 01:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("queues") as batch:
        batch.add_column(sa.Column("concurrency_limit_override", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("paused_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("overridden_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("queues") as batch:
        batch.drop_column("overridden_at")
        batch.drop_column("paused_at")
        batch.drop_column("concurrency_limit_override")
