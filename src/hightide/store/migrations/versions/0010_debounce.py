"""runs: a debounce key, found by later triggers with the same key while the run is delayed

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 02:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("debounce_key", sa.String(length=256), nullable=True))
    op.create_index("ix_runs_debounce", "runs", ["environment_id", "task_id", "debounce_key"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_runs_debounce", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("debounce_key")
