"""runs: an index for the claim's turns of concurrency keys

In a queue with a concurrency limit each concurrency key value gets its own copy of the limit, and
the claim gives keys turns: the n-th ready run of each (queue, key), in claim order, from one window
function. ``ix_runs_claim_key`` holds those runs in that order, so the window reads the index
instead of sorting every ready run on each claim.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 02:10:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_runs_claim_key",
        "runs",
        ["environment_id", "status", "queue", "concurrency_key", "rank_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_runs_claim_key", table_name="runs")
