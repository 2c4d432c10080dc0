"""fence tokens on leased rows; per-chunk tier checkpoints

Revision ID: 0008
Revises: 0007_taxonomies
Create Date: 2026-11-29 20:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007_taxonomies"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fence_token", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("batch_tiers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fence_token", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column(
                "checkpoint",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                server_default="{}",
                nullable=False,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("batch_tiers", schema=None) as batch_op:
        batch_op.drop_column("checkpoint")
        batch_op.drop_column("fence_token")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_column("fence_token")
