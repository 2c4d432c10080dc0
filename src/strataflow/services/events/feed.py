"""Reading what was recorded: the organisation's change feed (GET /v1/events) and a webhook's
delivery log."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.clock import isoformat
from strataflow.errors import BadRequestError
from strataflow.store.tables import DeliveryAttempt, OutboxEvent, WebhookDelivery


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        if kind != "seq" or not value.isdigit():
            raise ValueError(text)
        return int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequestError("Invalid events cursor", {"cursor": cursor}) from None


def list_events(
    session: Session,
    org_id: str,
    namespace_id: str | None,
    event_type: str | None,
    cursor: str | None,
    limit: int,
) -> dict[str, Any]:
    """Events after the cursor, oldest first (a feed a client follows); the cursor points AT an event."""
    after = decode_cursor(cursor) if cursor else 0
    query = select(OutboxEvent).where(OutboxEvent.org_id == org_id, OutboxEvent.seq > after)
    if namespace_id:
        query = query.where(OutboxEvent.namespace_id == namespace_id)
    if event_type:
        query = query.where(OutboxEvent.event_type == event_type)
    rows = list(session.scalars(query.order_by(OutboxEvent.seq).limit(limit + 1)))
    has_more = len(rows) > limit
    rows = rows[:limit]
    return {
        "results": [event_view(r) for r in rows],
        "next_cursor": encode_cursor(rows[-1].seq) if rows else cursor,
        "has_more": has_more,
    }


def event_view(row: OutboxEvent) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "cursor": encode_cursor(row.seq),
        "event_id": row.event_id,
        "namespace_id": row.namespace_id,
        "event_type": row.event_type,
        "resource_type": row.resource_type,
        "resource_id": row.resource_id,
        "operation": row.operation,
        "payload": row.payload,
        "trace_id": None,
        "created_at": isoformat(row.created_at),
    }


def delivery_log(session: Session, webhook_id: str, offset: int, limit: int) -> list[dict[str, Any]]:
    """The webhook's deliveries, newest first, each with its attempts."""
    deliveries = list(
        session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == webhook_id)
            .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.delivery_id)
            .offset(offset)
            .limit(limit)
        )
    )
    ids = [d.delivery_id for d in deliveries]
    attempts: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    for a in session.scalars(
        select(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(ids)).order_by(DeliveryAttempt.attempt_id)
    ):
        attempts[a.delivery_id].append(
            {
                "attempt": a.attempt,
                "attempted_at": isoformat(a.attempted_at),
                "ok": a.ok,
                "status_code": a.status_code,
                "error": a.error,
                "duration_ms": a.duration_ms,
            }
        )
    events = {
        e.seq: e
        for e in session.scalars(select(OutboxEvent).where(OutboxEvent.seq.in_([d.event_seq for d in deliveries])))
    }
    out = []
    for d in deliveries:
        event = events.get(d.event_seq)
        out.append(
            {
                "delivery_id": d.delivery_id,
                "event_id": event.event_id if event else None,
                "event_type": event.event_type if event else None,
                "status": d.status.value,
                "attempts": d.attempts,
                "next_attempt_at": isoformat(d.next_attempt_at) if d.status.value == "PENDING" else None,
                "last_status_code": d.last_status_code,
                "last_error": d.last_error,
                "created_at": isoformat(d.created_at),
                "completed_at": isoformat(d.completed_at),
                "log": attempts[d.delivery_id],
            }
        )
    return out
