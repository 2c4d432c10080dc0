"""clusters and their runs, and schedule triggers (issue 18)

Revision ID: c18_clusters
Revises: 0005
Create Date: 2026-11-29 20:45:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "c18_clusters"
down_revision = "0005"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "clusters",
        sa.Column("cluster_id", sa.String(length=40), nullable=False),
        sa.Column("namespace_id", sa.String(length=40), nullable=False),
        sa.Column("cluster_name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("cluster_type", sa.String(length=16), nullable=False),
        sa.Column("collection_ids", _json(), nullable=False),
        sa.Column("config", _json(), nullable=False),
        sa.Column("filters", _json(), nullable=True),
        sa.Column("metadata", _json(), nullable=False),
        sa.Column("current_run_id", sa.String(length=40), nullable=True),
        sa.Column("last_run_id", sa.String(length=40), nullable=True),
        sa.Column("last_task_id", sa.String(length=40), nullable=True),
        sa.Column("last_executed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["namespace_id"], ["namespaces.namespace_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("cluster_id"),
        sa.UniqueConstraint("namespace_id", "cluster_name"),
    )
    with op.batch_alter_table("clusters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_clusters_namespace_id"), ["namespace_id"], unique=False)
    op.create_table(
        "cluster_runs",
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("cluster_id", sa.String(length=40), nullable=False),
        sa.Column("namespace_id", sa.String(length=40), nullable=False),
        sa.Column("task_id", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("settings", _json(), nullable=False),
        sa.Column("algorithm", sa.String(length=32), nullable=True),
        sa.Column("num_clusters", sa.Integer(), nullable=False),
        sa.Column("num_points", sa.Integer(), nullable=False),
        sa.Column("source_documents", sa.Integer(), nullable=False),
        sa.Column("metrics", _json(), nullable=False),
        sa.Column("groups", _json(), nullable=False),
        sa.Column("label_overrides", _json(), nullable=False),
        sa.Column("run_name", sa.String(length=255), nullable=True),
        sa.Column("artifact_key", sa.String(length=1024), nullable=True),
        sa.Column("enriched", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("timings", _json(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["cluster_id"], ["clusters.cluster_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id"),
    )
    with op.batch_alter_table("cluster_runs", schema=None) as batch_op:
        batch_op.create_index("ix_cluster_runs_cluster_created", ["cluster_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_cluster_runs_namespace_id"), ["namespace_id"], unique=False)

    op.create_table(
        "triggers",
        sa.Column("trigger_id", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("namespace_id", sa.String(length=40), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=40), nullable=False),
        sa.Column("trigger_type", sa.String(length=16), nullable=False),
        sa.Column("schedule_config", _json(), nullable=False),
        sa.Column("execution_config", _json(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_triggered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_job_id", sa.String(length=40), nullable=True),
        sa.Column("execution_count", sa.Integer(), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("last_status", sa.String(length=32), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["namespace_id"], ["namespaces.namespace_id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.org_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("trigger_id"),
    )
    with op.batch_alter_table("triggers", schema=None) as batch_op:
        batch_op.create_index("ix_triggers_due", ["status", "next_run_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_triggers_namespace_id"), ["namespace_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_triggers_target_id"), ["target_id"], unique=False)
    op.create_table(
        "trigger_firings",
        sa.Column("firing_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("trigger_id", sa.String(length=40), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["trigger_id"], ["triggers.trigger_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("firing_id"),
    )
    with op.batch_alter_table("trigger_firings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trigger_firings_trigger_id"), ["trigger_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("trigger_firings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trigger_firings_trigger_id"))
    op.drop_table("trigger_firings")
    with op.batch_alter_table("triggers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_triggers_target_id"))
        batch_op.drop_index(batch_op.f("ix_triggers_namespace_id"))
        batch_op.drop_index("ix_triggers_due")
    op.drop_table("triggers")
    with op.batch_alter_table("cluster_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cluster_runs_namespace_id"))
        batch_op.drop_index("ix_cluster_runs_cluster_created")
    op.drop_table("cluster_runs")
    with op.batch_alter_table("clusters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clusters_namespace_id"))
    op.drop_table("clusters")
