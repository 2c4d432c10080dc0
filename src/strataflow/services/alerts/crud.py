"""Alerts: create, read, list, change, delete. What an evaluation needs is checked at save time:
the retriever exists, the condition is one this server evaluates, every channel names a
webhook of the organisation."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from strataflow.clock import isoformat, utcnow
from strataflow.errors import AlreadyExistsError, BadRequestError, not_found
from strataflow.ids import new_id
from strataflow.schemas.alerts import (
    AlertThresholdRequest,
    CreateAlertRequest,
    NotificationConfigRequest,
    PatchAlertRequest,
)
from strataflow.services.events.outbox import emit
from strataflow.services.retrievers.crud import get_retriever
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.pagination import Page, PageRequest, paginate
from strataflow.store.tables import Alert, Webhook

TRIGGER_ON = ("results", "no_results")
OPERATORS = {
    "gt": "gt",
    ">": "gt",
    "gte": "gte",
    ">=": "gte",
    "lt": "lt",
    "<": "lt",
    "lte": "lte",
    "<=": "lte",
    "eq": "eq",
    "==": "eq",
    "ne": "ne",
    "!=": "ne",
}


def _notification(session: Session, scope: NamespaceScope, config: NotificationConfigRequest) -> dict[str, Any]:
    channels = []
    for index, channel in enumerate(config.channels):
        if channel.channel_type != "webhook":
            raise BadRequestError(
                f"Alert channel '{channel.channel_type}' cannot be delivered by this server; "
                "use channel_type 'webhook' with channel_id naming one of the organization's webhooks",
                {"channel": index, "deliverable": ["webhook"]},
            )
        if not channel.channel_id:
            raise BadRequestError(
                "A webhook alert channel needs channel_id: the id of a webhook of this organization "
                "(create one with POST /v1/organizations/webhooks)",
                {"channel": index},
            )
        hook = session.scalar(
            select(Webhook).where(Webhook.webhook_id == channel.channel_id, Webhook.org_id == scope.org_id)
        )
        if hook is None:
            raise not_found("Webhook", channel.channel_id)
        channels.append({"channel_type": "webhook", "channel_id": channel.channel_id, "config": channel.config})
    return {
        "channels": channels,
        "include_matches": config.include_matches,
        "include_scores": config.include_scores,
        "template_id": config.template_id,
    }


def _condition(trigger_on: str | None, min_count: int | None, threshold: Any) -> dict[str, Any]:
    mode = trigger_on or "results"
    if mode not in TRIGGER_ON:
        raise BadRequestError(f"trigger_on must be one of {', '.join(TRIGGER_ON)}", {"trigger_on": mode})
    if mode == "no_results" and (min_count is not None or threshold is not None):
        raise BadRequestError("min_count and threshold apply to trigger_on='results' only")
    stored: dict[str, Any] = {"trigger_on": mode, "min_count": min_count, "threshold": None}
    if threshold is not None:
        operator = OPERATORS.get(str(threshold.operator).lower())
        if operator is None:
            raise BadRequestError(
                f"Unknown threshold operator '{threshold.operator}'", {"accepted": sorted(set(OPERATORS))}
            )
        stored["threshold"] = {"field": threshold.field, "operator": operator, "value": threshold.value}
    return stored


def create_alert(session: Session, scope: NamespaceScope, request: CreateAlertRequest) -> Alert:
    if (request.source or "retriever") != "retriever" or request.system_condition is not None:
        raise BadRequestError("Only retriever alerts (source='retriever') are available on this server")
    if not request.retriever_id:
        raise BadRequestError("A retriever alert needs retriever_id")
    retriever = get_retriever(session, scope, request.retriever_id)
    if request.renotify_interval_seconds is not None:
        raise BadRequestError("renotify_interval_seconds is not available on this server; use a cooldown")
    now = utcnow()
    row = Alert(
        alert_id=new_id("alert"),
        org_id=scope.org_id,
        namespace_id=scope.namespace_id,
        name=request.name,
        description=request.description,
        retriever_id=retriever.retriever_id,
        condition=_condition(request.trigger_on, request.min_count, request.threshold),
        inputs=request.inputs,
        cooldown_seconds=request.cooldown_seconds,
        notification_config=_notification(session, scope, request.notification_config),
        enabled=request.enabled,
        metadata_=request.metadata,
        created_at=now,
        updated_at=now,
    )
    _name_free(session, scope, row.name, None)
    session.add(row)
    return _save(session, row, "alert.created")


def _name_free(session: Session, scope: NamespaceScope, name: str, except_id: str | None) -> None:
    existing = session.scalar(
        select(Alert.alert_id).where(Alert.namespace_id == scope.namespace_id, Alert.name == name)
    )
    if existing is not None and existing != except_id:
        raise AlreadyExistsError(f"Alert '{name}' already exists in this namespace", {"name": name})


def _save(session: Session, row: Alert, event_type: str | None = None) -> Alert:
    try:
        if event_type is not None:
            alert_event(session, event_type, row)  # its flush may meet a concurrent save's name
        session.commit()
    except IntegrityError:
        session.rollback()
        raise AlreadyExistsError(f"Alert '{row.name}' already exists in this namespace", {"name": row.name}) from None
    return row


def get_alert(session: Session, scope: NamespaceScope, identifier: str) -> Alert:
    """By id, or by name within the namespace."""
    row = session.scalar(
        select(Alert).where(
            Alert.namespace_id == scope.namespace_id, or_(Alert.alert_id == identifier, Alert.name == identifier)
        )
    )
    if row is None:
        raise not_found("Alert", identifier)
    return row


def patch_alert(session: Session, scope: NamespaceScope, identifier: str, request: PatchAlertRequest) -> Alert:
    row = get_alert(session, scope, identifier)
    changes = request.model_dump(exclude_unset=True)
    if changes.get("name") is not None:
        _name_free(session, scope, changes["name"], row.alert_id)
        row.name = changes["name"]
    if "description" in changes:
        row.description = changes["description"]
    if changes.get("retriever_id") is not None:
        row.retriever_id = get_retriever(session, scope, changes["retriever_id"]).retriever_id
    if {"trigger_on", "min_count", "threshold"} & set(changes):
        current = row.condition or {}
        threshold = request.threshold if "threshold" in changes else None
        if "threshold" not in changes and current.get("threshold"):
            threshold = AlertThresholdRequest.model_validate(current["threshold"])
        row.condition = _condition(
            changes.get("trigger_on", current.get("trigger_on")),
            changes.get("min_count", current.get("min_count")),
            threshold,
        )
    if "inputs" in changes:
        row.inputs = changes["inputs"]
    if changes.get("cooldown_seconds") is not None:
        row.cooldown_seconds = changes["cooldown_seconds"]
    if request.notification_config is not None:
        row.notification_config = _notification(session, scope, request.notification_config)
    if changes.get("enabled") is not None:
        row.enabled = changes["enabled"]
    if "metadata" in changes:
        row.metadata_ = changes["metadata"]
    row.updated_at = utcnow()
    return _save(session, row, "alert.updated")


def delete_alert(session: Session, scope: NamespaceScope, identifier: str) -> str:
    row = get_alert(session, scope, identifier)
    alert_event(session, "alert.deleted", row)
    session.delete(row)
    session.commit()
    return row.alert_id


def list_alerts(
    session: Session, scope: NamespaceScope, search: str | None, case_sensitive: bool, page: PageRequest
) -> tuple[Page, int]:
    query: Select[Any] = select(Alert).where(Alert.namespace_id == scope.namespace_id)
    if search:
        pattern = f"%{search.replace('%', '').replace('_', '')}%"
        columns = (Alert.alert_id, Alert.name, Alert.description)
        if case_sensitive:
            query = query.where(or_(*(c.like(pattern) for c in columns)))
        else:
            query = query.where(or_(*(func.lower(c).like(pattern.lower()) for c in columns)))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    return paginate(session, query.order_by(Alert.created_at.desc(), Alert.alert_id), page), total


def alert_event(session: Session, event_type: str, row: Alert, **extra: Any) -> None:
    emit(
        session,
        event_type,
        org_id=row.org_id,
        namespace_id=row.namespace_id,
        resource_id=row.alert_id,
        payload={"alert_id": row.alert_id, "name": row.name, "retriever_id": row.retriever_id, **extra},
        to_webhooks=frozenset(c["channel_id"] for c in row.notification_config.get("channels", []))
        if event_type == "alert.triggered"
        else frozenset(),
    )


def alert_view(row: Alert) -> dict[str, Any]:
    condition = row.condition or {}
    return {
        "alert_id": row.alert_id,
        "namespace_id": row.namespace_id,
        "name": row.name,
        "description": row.description,
        "source": "retriever",
        "retriever_id": row.retriever_id,
        "trigger_on": condition.get("trigger_on", "results"),
        "min_count": condition.get("min_count"),
        "threshold": condition.get("threshold"),
        "inputs": row.inputs,
        "cooldown_seconds": row.cooldown_seconds,
        "renotify_interval_seconds": None,
        "last_fired_at": isoformat(row.last_fired_at),
        "notification_config": row.notification_config,
        "enabled": row.enabled,
        "created_at": isoformat(row.created_at),
        "updated_at": isoformat(row.updated_at),
        "metadata": row.metadata_,
    }
