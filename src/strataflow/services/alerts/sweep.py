"""System alerts checked on their own schedule, by the trigger loop's alert sweep.

An enabled system alert is due when `next_check_at` has passed. A process claims the check by
moving `next_check_at` on by the condition's `check_interval_seconds` with a conditional UPDATE
(`WHERE next_check_at = <what it read>`), as a trigger claims its slot, so of several API servers
and workers exactly one checks each due time. An alert that an `alert_evaluation` trigger names
is evaluated by that trigger instead (on its schedule only), as the contract says of the sweep.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update

from strataflow.clock import utcnow
from strataflow.engine.jobs import JobContext
from strataflow.services.alerts import system
from strataflow.services.alerts.crud import AlertOwner
from strataflow.services.alerts.evaluate import evaluate
from strataflow.store.tables import Alert, Trigger

log = logging.getLogger("strataflow.alerts")


def check_system_alerts(context: JobContext) -> int:
    """Check every system alert due now; returns how many this process checked."""
    now = utcnow()
    with context.db.read_session() as session:
        scheduled = select(Trigger.target_id).where(Trigger.target_type == "alert_evaluation")
        due = list(
            session.execute(
                select(Alert.alert_id, Alert.next_check_at, Alert.system_condition)
                .where(
                    Alert.source == "system",
                    Alert.enabled.is_(True),
                    Alert.next_check_at <= now,
                    Alert.alert_id.not_in(scheduled),
                )
                .order_by(Alert.next_check_at)
                .limit(50)
            ).all()
        )
    checked = 0
    for alert_id, slot, condition in due:
        following = utcnow() + timedelta(seconds=system.check_interval_s(condition or {}))
        with context.db.transaction() as session:
            claimed = session.execute(
                update(Alert)
                .where(Alert.alert_id == alert_id, Alert.next_check_at == slot, Alert.enabled.is_(True))
                .values(next_check_at=following)
                .execution_options(synchronize_session=False)
            )
            row = session.get(Alert, alert_id) if claimed.rowcount == 1 else None  # type: ignore[attr-defined]
            owner = AlertOwner(row.org_id, row.namespace_id) if row is not None else None
        if owner is None:
            continue  # another process checks this due time
        try:
            evaluate(context.db, context.services["index"], context.blobs, owner, alert_id, "scheduled")
            checked += 1
        except Exception:  # one broken alert must not stop the sweep
            log.exception("system alert check failed", extra={"alert_id": alert_id})
    return checked
