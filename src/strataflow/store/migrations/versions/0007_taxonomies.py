"""taxonomies and their versions (issue 19)

Revision ID: 0007_taxonomies
Revises: c18_clusters
Create Date: 2026-11-29 (re-chain down_revision after the other branches' migrations at merge)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007_taxonomies"
down_revision = "c18_clusters"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "taxonomies",
        sa.Column("taxonomy_id", sa.String(length=40), nullable=False),
        sa.Column("namespace_id", sa.String(length=40), nullable=False),
        sa.Column("taxonomy_name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "config", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column(
            "nodes", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column(
            "metadata", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["namespace_id"], ["namespaces.namespace_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("taxonomy_id"),
        sa.UniqueConstraint("namespace_id", "taxonomy_name"),
    )
    with op.batch_alter_table("taxonomies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_taxonomies_namespace_id"), ["namespace_id"], unique=False)
    op.create_table(
        "taxonomy_versions",
        sa.Column("taxonomy_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("taxonomy_name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "config", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["taxonomy_id"], ["taxonomies.taxonomy_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("taxonomy_id", "version"),
    )


def downgrade() -> None:
    op.drop_table("taxonomy_versions")
    with op.batch_alter_table("taxonomies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_taxonomies_namespace_id"))
    op.drop_table("taxonomies")
