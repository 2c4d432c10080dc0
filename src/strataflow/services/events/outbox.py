"""The outbox: an event is written in the same transaction as the change that caused it.

`emit` adds the event row and one delivery per matching webhook channel to the caller's
session; the caller's commit makes the change, the event and its deliveries durable together
(and a rollback drops all three). The dispatcher (engine/dispatcher.py) delivers from there;
a dispatcher in this process is woken at the commit, others find the work at their next poll.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from strataflow.clock import as_utc, isoformat, utcnow
from strataflow.services.events.catalog import EVENT_MIN_GAP_S, KNOWN, WILDCARD, operation_of, resource_type_of
from strataflow.statuses import Status
from strataflow.store.tables import Namespace, OutboxEvent, Trigger, Webhook, WebhookDelivery
from strataflow.transitions import create

log = logging.getLogger("strataflow.events")

_EMITTED = "strataflow_events_emitted"
_listeners: list[Callable[[], None]] = []


def on_commit(callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` after each commit that recorded a delivery; returns the function that stops it."""
    _listeners.append(callback)
    return lambda: _listeners.remove(callback) if callback in _listeners else None


@sa_event.listens_for(Session, "after_commit")
def _wake(session: Session) -> None:
    if session.info.pop(_EMITTED, False):
        for callback in _listeners:
            callback()


def new_event_id() -> str:
    return f"evt_{secrets.token_hex(12)}"


def emit(
    session: Session,
    event_type: str,
    *,
    namespace_id: str | None,
    resource_id: str | None,
    payload: dict[str, Any],
    org_id: str | None = None,
    to_webhooks: frozenset[str] = frozenset(),
) -> OutboxEvent | None:
    """Record one event (and its deliveries) in `session`'s transaction. `org_id` is read from the
    namespace when not given. Returns None when the namespace is gone (nothing to report to).

    `to_webhooks` names webhooks that get the event whatever they subscribe to (an alert's channels)."""
    if event_type not in KNOWN:
        raise ValueError(f"unknown event type {event_type}")
    if org_id is None:
        namespace = session.get(Namespace, namespace_id) if namespace_id else None
        if namespace is None:
            return None
        org_id = namespace.org_id
    resource_type = str(payload.get("resource_type") or "") if event_type.startswith("resource.") else ""
    row = OutboxEvent(
        event_id=new_event_id(),
        org_id=org_id,
        namespace_id=namespace_id,
        event_type=event_type,
        resource_type=resource_type or resource_type_of(event_type),
        resource_id=resource_id,
        operation=operation_of(event_type),
        payload=payload,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()  # the row's seq, which its deliveries point at
    hooks = session.scalars(select(Webhook).where(Webhook.org_id == org_id, Webhook.is_active.is_(True))).all()
    made = 0
    for hook in hooks:
        if hook.webhook_id not in to_webhooks and not subscribes(hook, row):
            continue
        for index, channel in enumerate(hook.channels):
            if channel.get("channel") != "webhook":
                continue
            delivery = WebhookDelivery(
                delivery_id=f"dlv_{secrets.token_hex(10)}",
                webhook_id=hook.webhook_id,
                org_id=org_id,
                event_seq=row.seq,
                channel_index=index,
                next_attempt_at=row.created_at,
                created_at=row.created_at,
            )
            create(session, delivery, Status.PENDING, f"event {row.event_type}")
            made += 1
    if made:
        session.info[_EMITTED] = True
    if namespace_id is not None and not event_type.startswith("trigger."):
        _make_event_triggers_due(session, row)
    return row


def _make_event_triggers_due(session: Session, event: OutboxEvent) -> None:
    """Event triggers of the namespace listening to this event count it (one event, or for a
    documents_added trigger the documents it wrote); once the count reaches the trigger's
    `event_threshold` it becomes due now (or, right after a firing, once its cooldown has passed),
    and the trigger loop fires it once, however many came. The count is an SQL increment, so
    concurrent events are never lost; the claim that fires the trigger resets it."""
    triggers = session.scalars(
        select(Trigger)
        .where(Trigger.namespace_id == event.namespace_id, Trigger.trigger_type == "event", Trigger.status == "active")
        .order_by(Trigger.trigger_id)  # rows are updated in one order by every transaction: no deadlock
    ).all()
    for trigger in triggers:
        config = trigger.schedule_config or {}
        if config.get("event_type") != event.event_type:
            continue
        if config.get("resource_id") and config["resource_id"] != event.resource_id:
            continue
        weight = 1
        if config.get("counts") == "documents":
            weight = int((event.payload or {}).get("rows_done") or 0)
            if weight <= 0:
                continue
        counted = session.execute(
            update(Trigger)
            .where(Trigger.trigger_id == trigger.trigger_id)
            .values(pending_events=Trigger.pending_events + weight)
            .returning(Trigger.pending_events)
            .execution_options(synchronize_session=False)
        ).scalar_one()
        if counted < int(config.get("event_threshold") or 1):
            continue
        gap = int(config.get("cooldown_seconds") or EVENT_MIN_GAP_S)
        due = event.created_at
        if trigger.last_triggered_at is not None:
            due = max(due, as_utc(trigger.last_triggered_at) + timedelta(seconds=gap))
        if trigger.next_run_at is None or as_utc(trigger.next_run_at) > due:
            trigger.next_run_at = due


def subscribes(hook: Webhook, event: OutboxEvent) -> bool:
    types = set(hook.event_types or [])
    if WILDCARD not in types and event.event_type not in types:
        return False
    wanted = hook.resource_types or []
    return not wanted or event.resource_type in wanted


def envelope(event: OutboxEvent) -> dict[str, Any]:
    """What a delivery carries (and what a payload template sees): enough to act without a second call."""
    return {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "seq": event.seq,
        "created_at": isoformat(event.created_at),
        "namespace_id": event.namespace_id,
        "resource_type": event.resource_type,
        "resource_id": event.resource_id,
        "operation": event.operation,
        "payload": event.payload,
    }
