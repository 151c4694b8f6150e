"""runs list: an index per filter of the Runs page, in its order (newest first)

The list of runs is ordered by (created_at, id) within an environment and filtered by status, task
and tag. Each filter gets an index that returns its runs already in that order, so that a page reads
about a page of index entries instead of the environment's runs (bench/dashboard_pages.py: 1,000,000
runs). ``ix_runs_list`` gains ``id`` (the order's tie-break), ``ix_run_tags_env_tag`` the ``run_id``
the tag filter selects (it no longer reads the table). The version filter has its own, and the
Queues page's counts of active runs per queue read ``ix_runs_queue_counts`` alone.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 22:15:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_runs_list", table_name="runs")
    op.create_index("ix_runs_list", "runs", ["environment_id", "created_at", "id"], unique=False)
    op.create_index("ix_runs_list_status", "runs", ["environment_id", "status", "created_at", "id"], unique=False)
    op.create_index("ix_runs_list_task", "runs", ["environment_id", "task_id", "created_at", "id"], unique=False)
    op.create_index(
        "ix_runs_list_status_task", "runs", ["environment_id", "status", "task_id", "created_at", "id"], unique=False
    )
    op.create_index("ix_runs_list_version", "runs", ["environment_id", "version", "created_at", "id"], unique=False)
    op.create_index("ix_runs_queue_counts", "runs", ["environment_id", "status", "queue"], unique=False)
    op.drop_index("ix_run_tags_env_tag", table_name="run_tags")
    op.create_index("ix_run_tags_env_tag", "run_tags", ["environment_id", "tag", "run_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_run_tags_env_tag", table_name="run_tags")
    op.create_index("ix_run_tags_env_tag", "run_tags", ["environment_id", "tag"], unique=False)
    op.drop_index("ix_runs_queue_counts", table_name="runs")
    op.drop_index("ix_runs_list_version", table_name="runs")
    op.drop_index("ix_runs_list_status_task", table_name="runs")
    op.drop_index("ix_runs_list_task", table_name="runs")
    op.drop_index("ix_runs_list_status", table_name="runs")
    op.drop_index("ix_runs_list", table_name="runs")
    op.create_index("ix_runs_list", "runs", ["environment_id", "created_at"], unique=False)
