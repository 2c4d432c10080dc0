"""events retention: indexes the retention sweep reads (old events, finished deliveries)

Revision ID: 0013_events_retention
Revises: 0012_alerts_org
Create Date: 2026-11-30 03:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0013_events_retention"
down_revision = "0012_alerts_org"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_events_created_at", "events", ["created_at"], unique=False)
    op.create_index("ix_webhook_deliveries_done", "webhook_deliveries", ["status", "completed_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_done", table_name="webhook_deliveries")
    op.drop_index("ix_events_created_at", table_name="events")
