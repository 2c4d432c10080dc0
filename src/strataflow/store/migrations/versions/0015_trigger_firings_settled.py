"""trigger firings: when the end of the firing's job was announced (trigger.execution.*)

Revision ID: 0015_trigger_firings_settled
Revises: 0014_alert_org_names
Create Date: 2026-11-30 04:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_trigger_firings_settled"
down_revision = "0014_alert_org_names"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trigger_firings") as batch_op:
        batch_op.add_column(sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_trigger_firings_settled_at", ["settled_at"], unique=False)
    # Firings made before this revision are not announced late: they count as settled when fired.
    op.execute("UPDATE trigger_firings SET settled_at = fired_at")


def downgrade() -> None:
    with op.batch_alter_table("trigger_firings") as batch_op:
        batch_op.drop_index("ix_trigger_firings_settled_at")
        batch_op.drop_column("settled_at")
