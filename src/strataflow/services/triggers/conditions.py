"""Whether a conditional trigger's condition holds at a check (engine/triggers.py asks).

- `documents_added`: the documents written to the collection (rows of finished tiers, from the
  `collection.documents.written` events) since the trigger last fired, or since it was created,
  reach `threshold`.
- a system condition (the system alerts' measures, services/alerts/system.py) over the trigger's
  namespace: it fires when the condition rises (holds now, did not at the previous check), so a
  condition that keeps holding fires once, not at every check. Whether it held is kept in the
  trigger's `pending_events` (1 or 0).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from strataflow.index.store import DocumentIndex
from strataflow.services.alerts import system
from strataflow.services.triggers.schedule import DOCUMENTS_ADDED, WRITTEN
from strataflow.store.tables import OutboxEvent, Trigger, TriggerFiring


def documents_since_firing(session: Session, trigger: Trigger, collection_id: str) -> int:
    since = session.scalar(
        select(func.max(TriggerFiring.fired_at)).where(TriggerFiring.trigger_id == trigger.trigger_id)
    )
    query = select(OutboxEvent.payload).where(
        OutboxEvent.event_type == WRITTEN,
        OutboxEvent.resource_id == collection_id,
        OutboxEvent.created_at > (since or trigger.created_at),
    )
    return sum(int((payload or {}).get("rows_done") or 0) for payload in session.scalars(query))


def check(session: Session, index: DocumentIndex | None, trigger: Trigger) -> tuple[bool, dict[str, Any]]:
    """(fire, what was measured); a system condition's held flag is updated on `trigger`."""
    config = trigger.schedule_config or {}
    kind = str(config.get("condition_type"))
    if kind == DOCUMENTS_ADDED:
        added = documents_since_firing(session, trigger, str(config["collection_id"]))
        return added >= float(config.get("threshold") or 1), {"documents_added": added}
    found = system.measure(session, index, {"type": kind, "params": config.get("params") or {}}, [trigger.namespace_id])
    held_before = bool(trigger.pending_events)
    trigger.pending_events = 1 if found else 0
    return bool(found) and not held_before, {"found": found[:20]}
