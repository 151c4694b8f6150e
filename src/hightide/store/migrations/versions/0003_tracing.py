"""tracing

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 02:39:49.454240
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spans",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("trace_id", sa.String(length=32), nullable=False),
        sa.Column("span_id", sa.String(length=16), nullable=False),
        sa.Column("parent_span_id", sa.String(length=16), nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.String(length=128), nullable=True),
        sa.Column("start_time", sa.Float(), nullable=False),
        sa.Column("end_time", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attributes", sa.Text(), nullable=False),
        sa.Column("events", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("spans", schema=None) as batch_op:
        batch_op.create_index("ix_spans_run", ["run_id"], unique=False)
        batch_op.create_index("ix_spans_trace", ["trace_id", "start_time"], unique=False)

    with op.batch_alter_table("run_logs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("span_id", sa.String(length=16), nullable=True))

    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trace_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("span_id", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("parent_span_id", sa.String(length=16), nullable=True))
        batch_op.create_index("ix_runs_trace", ["trace_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_trace")
        batch_op.drop_column("parent_span_id")
        batch_op.drop_column("span_id")
        batch_op.drop_column("trace_id")

    with op.batch_alter_table("run_logs", schema=None) as batch_op:
        batch_op.drop_column("span_id")

    with op.batch_alter_table("spans", schema=None) as batch_op:
        batch_op.drop_index("ix_spans_trace")
        batch_op.drop_index("ix_spans_run")

    op.drop_table("spans")
