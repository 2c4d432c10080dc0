"""retrievers: the caller's key-value metadata

Revision ID: 0017_retriever_metadata
Revises: 0016_batch_create_options
Create Date: 2026-11-30 16:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0017_retriever_metadata"
down_revision = "0016_batch_create_options"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    # Nullable: a retriever made before this revision has none (returned as {}).
    with op.batch_alter_table("retrievers") as batch_op:
        batch_op.add_column(sa.Column("metadata", _JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("retrievers") as batch_op:
        batch_op.drop_column("metadata")
