"""alerts: organisation-level and system alerts, re-notification, at-least-once ingest claims;
event-trigger thresholds (issue 20, follow-up)

Revision ID: 0012_alerts_org
Revises: 0009_events
Create Date: 2026-11-30 03:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012_alerts_org"
down_revision = "0009_events"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.alter_column("namespace_id", existing_type=sa.String(length=40), nullable=True)
        batch_op.alter_column("retriever_id", existing_type=sa.String(length=40), nullable=True)
        batch_op.add_column(sa.Column("source", sa.String(length=16), server_default="retriever", nullable=False))
        batch_op.add_column(sa.Column("system_condition", _JSON, nullable=True))
        batch_op.add_column(sa.Column("namespace_selector", _JSON, nullable=True))
        batch_op.add_column(sa.Column("renotify_interval_seconds", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("rise_notified", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("next_check_at", _TS, nullable=True))
        batch_op.drop_column("pending_since")
        batch_op.drop_column("pending_documents")
        batch_op.create_index("ix_alerts_org", ["org_id"], unique=False)
    op.create_table(
        "alert_ingest_claims",
        sa.Column("alert_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("marked_at", _TS, nullable=False),
        sa.Column("documents", _JSON, nullable=False),
        sa.Column("remarked", sa.Boolean(), nullable=False),
        sa.Column("later_documents", _JSON, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", _TS, nullable=True),
        sa.Column("fence_token", sa.Integer(), server_default="0", nullable=False),
        sa.Column("completed_at", _TS, nullable=True),
        sa.Column("updated_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.alert_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("alert_id"),
    )
    op.create_index("ix_alert_ingest_due", "alert_ingest_claims", ["status", "lease_expires_at"], unique=False)
    with op.batch_alter_table("triggers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pending_events", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("triggers", schema=None) as batch_op:
        batch_op.drop_column("pending_events")
    op.drop_index("ix_alert_ingest_due", table_name="alert_ingest_claims")
    op.drop_table("alert_ingest_claims")
    op.execute("DELETE FROM alerts WHERE namespace_id IS NULL OR retriever_id IS NULL")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_org")
        batch_op.add_column(sa.Column("pending_documents", _JSON, nullable=True))
        batch_op.add_column(sa.Column("pending_since", _TS, nullable=True))
        batch_op.drop_column("next_check_at")
        batch_op.drop_column("rise_notified")
        batch_op.drop_column("renotify_interval_seconds")
        batch_op.drop_column("namespace_selector")
        batch_op.drop_column("system_condition")
        batch_op.drop_column("source")
        batch_op.alter_column("retriever_id", existing_type=sa.String(length=40), nullable=False)
        batch_op.alter_column("namespace_id", existing_type=sa.String(length=40), nullable=False)
