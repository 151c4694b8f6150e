"""runs: the final hooks a CRASHED or TIMED_OUT run is owed, for a worker to run

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 16:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("hooks_owed_until", sa.Float(), nullable=True))
    owed = sa.text("hooks_owed_until IS NOT NULL")
    op.create_index(
        "ix_runs_hooks_owed",
        "runs",
        ["environment_id", "hooks_owed_until"],
        unique=False,
        postgresql_where=owed,
        sqlite_where=owed,
    )


def downgrade() -> None:
    op.drop_index("ix_runs_hooks_owed", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("hooks_owed_until")
