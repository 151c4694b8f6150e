"""api keys: their last four characters, shown beside the prefix

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 23:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Keys made before this revision keep no last characters: they show their prefix only.
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("key_last4", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("key_last4")
