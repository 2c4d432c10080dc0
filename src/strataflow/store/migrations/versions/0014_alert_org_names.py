"""organisation alert names: unique per organisation (the namespace constraint treats NULLs as distinct)

Revision ID: 0014_alert_org_names
Revises: 0013_events_retention
Create Date: 2026-11-30 04:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_alert_org_names"
down_revision = "0013_events_retention"
branch_labels = None
depends_on = None

ORG_LEVEL = sa.text("namespace_id IS NULL")


def upgrade() -> None:
    op.create_index(
        "ux_alerts_org_name",
        "alerts",
        ["org_id", "name"],
        unique=True,
        sqlite_where=ORG_LEVEL,
        postgresql_where=ORG_LEVEL,
    )


def downgrade() -> None:
    op.drop_index("ux_alerts_org_name", table_name="alerts")
