"""batches: the create options (name, collection scope, dedup strategy) and the submit webhook

Revision ID: 0016_batch_create_options
Revises: 0015_trigger_firings_settled
Create Date: 2026-11-30 16:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0016_batch_create_options"
down_revision = "0015_trigger_firings_settled"
branch_labels = None
depends_on = None

_UNTOLD = "webhook_url IS NOT NULL AND (webhook_sent_at IS NULL OR webhook_sent_at < completed_at)"
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    # All nullable: a batch made before this revision has no name, no scope, no strategy, no webhook.
    with op.batch_alter_table("batches") as batch_op:
        batch_op.add_column(sa.Column("batch_name", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("collection_scope", _JSON, nullable=True))
        batch_op.add_column(sa.Column("dedup_strategy", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("webhook_url", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("webhook_sent_at", sa.DateTime(timezone=True), nullable=True))
    # Kept small: only batches whose webhook is still to be told of their last end.
    op.create_index(
        "ix_batches_webhook_untold",
        "batches",
        ["completed_at"],
        unique=False,
        sqlite_where=sa.text(_UNTOLD),
        postgresql_where=sa.text(_UNTOLD),
    )


def downgrade() -> None:
    op.drop_index("ix_batches_webhook_untold", table_name="batches")
    with op.batch_alter_table("batches") as batch_op:
        for column in ("webhook_sent_at", "webhook_url", "dedup_strategy", "collection_scope", "batch_name"):
            batch_op.drop_column(column)
