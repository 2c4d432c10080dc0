"""Alerts: create, read, list, change, delete. What an evaluation needs is checked at save time:
the retriever exists, the condition is one this server evaluates, every channel names a
webhook of the organisation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from strataflow.clock import isoformat, utcnow
from strataflow.errors import AlreadyExistsError, BadRequestError, not_found
from strataflow.ids import new_id
from strataflow.schemas.alerts import (
    AlertThresholdRequest,
    CreateAlertRequest,
    ListAlertsRequest,
    NamespaceSelectorRequest,
    NotificationConfigRequest,
    PatchAlertRequest,
    SystemConditionRequest,
)
from strataflow.services.alerts import system
from strataflow.services.events.outbox import emit
from strataflow.services.retrievers.crud import get_retriever
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.statuses import Status
from strataflow.store.filters import FieldMap
from strataflow.store.pagination import ListQuery, Page, PageRequest, list_page
from strataflow.store.tables import Alert, Namespace, Retriever, Webhook

TRIGGER_ON = ("results", "no_results")
SOURCES = ("retriever", "system")
SELECTOR_MODES = ("all", "selected")
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


def _notification(session: Session, scope: Owner, config: NotificationConfigRequest) -> dict[str, Any]:
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


@dataclass(frozen=True)
class AlertOwner:
    """Whose alerts: a namespace's (namespace_id set) or the organisation's own (namespace_id None)."""

    org_id: str
    namespace_id: str | None = None


class Owner(Protocol):
    @property
    def org_id(self) -> str: ...

    @property
    def namespace_id(self) -> str | None: ...


def _owned(owner: Owner) -> Any:
    """The WHERE clause selecting the alerts this owner holds."""
    if owner.namespace_id is None:
        return and_(Alert.org_id == owner.org_id, Alert.namespace_id.is_(None))
    return Alert.namespace_id == owner.namespace_id


def _org_retriever(session: Session, owner: Owner, identifier: str) -> Retriever:
    """An organisation alert's retriever: by id in any namespace of the organisation."""
    row = session.scalar(
        select(Retriever)
        .join(Namespace, Namespace.namespace_id == Retriever.namespace_id)
        .where(Namespace.org_id == owner.org_id, Retriever.retriever_id == identifier)
    )
    if row is None:
        raise not_found("Retriever", identifier)
    return row


def _retriever(session: Session, owner: Owner, identifier: str) -> Retriever:
    if owner.namespace_id is None:
        return _org_retriever(session, owner, identifier)
    return get_retriever(session, NamespaceScope(owner.org_id, owner.namespace_id, ""), identifier)


def _selector(session: Session, owner: Owner, selector: NamespaceSelectorRequest | None) -> dict[str, Any] | None:
    if selector is None:
        return None
    if owner.namespace_id is not None:
        raise BadRequestError(
            "namespace_selector applies to organization alerts (/v1/organizations/alerts); "
            "a namespace alert covers its own namespace"
        )
    mode = selector.mode or ("selected" if selector.namespace_ids else "all")
    if mode not in SELECTOR_MODES:
        raise BadRequestError(f"namespace_selector.mode must be one of {', '.join(SELECTOR_MODES)}", {"mode": mode})
    if mode == "all":
        return {"mode": "all", "namespace_ids": None}
    wanted = list(dict.fromkeys(selector.namespace_ids or []))
    if not wanted:
        raise BadRequestError("namespace_selector.mode 'selected' needs a non-empty namespace_ids")
    found = set(
        session.scalars(
            select(Namespace.namespace_id).where(
                Namespace.org_id == owner.org_id,
                Namespace.namespace_id.in_(wanted),
                Namespace.status == Status.ACTIVE,
            )
        )
    )
    missing = [n for n in wanted if n not in found]
    if missing:
        raise not_found("Namespace", missing[0])
    return {"mode": "selected", "namespace_ids": wanted}


def _source(
    session: Session,
    owner: Owner,
    source: str,
    retriever_id: str | None,
    system_condition: SystemConditionRequest | None,
    selector: dict[str, Any] | None,
) -> tuple[str | None, dict[str, Any] | None]:
    """The retriever id (retriever alerts) or the stored system condition (system alerts)."""
    if source not in SOURCES:
        raise BadRequestError(f"source must be one of {', '.join(SOURCES)}", {"source": source})
    if source == "system":
        if system_condition is None:
            raise BadRequestError("A system alert needs system_condition: {type, params}")
        if retriever_id:
            raise BadRequestError("A system alert runs no retriever; leave retriever_id out")
        return None, system.normalise(system_condition.type, system_condition.params)
    if system_condition is not None:
        raise BadRequestError("system_condition applies to source='system' alerts only")
    if not retriever_id:
        raise BadRequestError("A retriever alert needs retriever_id")
    retriever = _retriever(session, owner, retriever_id)
    if (
        selector is not None
        and selector["mode"] == "selected"
        and retriever.namespace_id not in selector["namespace_ids"]
    ):
        raise BadRequestError(
            "The retriever's namespace is not among namespace_selector.namespace_ids: a retriever alert "
            "runs its retriever in the retriever's own namespace",
            {"retriever_namespace_id": retriever.namespace_id},
        )
    return retriever.retriever_id, None


def _renotify(seconds: int | None, cooldown: int) -> int | None:
    if seconds is not None and seconds < cooldown:
        raise BadRequestError(
            "renotify_interval_seconds is shorter than cooldown_seconds: it could never notify inside the cooldown",
            {"renotify_interval_seconds": seconds, "cooldown_seconds": cooldown},
        )
    return seconds


def create_alert(session: Session, owner: Owner, request: CreateAlertRequest) -> Alert:
    source = request.source or ("system" if request.system_condition is not None else "retriever")
    selector = _selector(session, owner, request.namespace_selector)
    retriever_id, condition_system = _source(
        session, owner, source, request.retriever_id, request.system_condition, selector
    )
    if source == "system" and (request.trigger_on not in (None, "results") or request.threshold is not None):
        raise BadRequestError(
            "trigger_on and threshold apply to retriever alerts; "
            "a system alert holds when its condition finds a resource"
        )
    now = utcnow()
    row = Alert(
        alert_id=new_id("alert"),
        org_id=owner.org_id,
        namespace_id=owner.namespace_id,
        name=request.name,
        description=request.description,
        source=source,
        retriever_id=retriever_id,
        system_condition=condition_system,
        namespace_selector=selector,
        condition=_condition(request.trigger_on, request.min_count, request.threshold),
        inputs=request.inputs,
        cooldown_seconds=request.cooldown_seconds,
        renotify_interval_seconds=_renotify(request.renotify_interval_seconds, request.cooldown_seconds),
        notification_config=_notification(session, owner, request.notification_config),
        enabled=request.enabled,
        metadata_=request.metadata,
        next_check_at=now if source == "system" and request.enabled else None,
        created_at=now,
        updated_at=now,
    )
    _name_free(session, owner, row.name, None)
    session.add(row)
    return _save(session, row, "alert.created")


def _name_free(session: Session, owner: Owner, name: str, except_id: str | None) -> None:
    existing = session.scalar(select(Alert.alert_id).where(_owned(owner), Alert.name == name))
    if existing is not None and existing != except_id:
        raise AlreadyExistsError(f"Alert '{name}' already exists {_where(owner)}", {"name": name})


def _where(owner: Owner) -> str:
    return "in this organization" if owner.namespace_id is None else "in this namespace"


def _save(session: Session, row: Alert, event_type: str | None = None) -> Alert:
    try:
        if event_type is not None:
            alert_event(session, event_type, row)  # its flush may meet a concurrent save's name
        session.commit()
    except IntegrityError:
        session.rollback()
        raise AlreadyExistsError(f"Alert '{row.name}' already exists", {"name": row.name}) from None
    return row


def get_alert(session: Session, owner: Owner, identifier: str) -> Alert:
    """By id, or by name, among the owner's alerts."""
    row = session.scalar(
        select(Alert).where(_owned(owner), or_(Alert.alert_id == identifier, Alert.name == identifier))
    )
    if row is None:
        raise not_found("Alert", identifier)
    return row


def patch_alert(session: Session, owner: Owner, identifier: str, request: PatchAlertRequest) -> Alert:
    row = get_alert(session, owner, identifier)
    changes = request.model_dump(exclude_unset=True)
    if changes.get("name") is not None:
        _name_free(session, owner, changes["name"], row.alert_id)
        row.name = changes["name"]
    if "description" in changes:
        row.description = changes["description"]
    if request.namespace_selector is not None:
        row.namespace_selector = _selector(session, owner, request.namespace_selector)
    if changes.get("retriever_id") is not None or request.system_condition is not None:
        retriever_id, condition_system = _source(
            session,
            owner,
            row.source,
            changes.get("retriever_id") or (row.retriever_id if row.source == "retriever" else None),
            request.system_condition,
            row.namespace_selector,
        )
        row.retriever_id, row.system_condition = retriever_id, condition_system
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
    if "renotify_interval_seconds" in changes:
        row.renotify_interval_seconds = changes["renotify_interval_seconds"]
    _renotify(row.renotify_interval_seconds, row.cooldown_seconds)
    if request.notification_config is not None:
        row.notification_config = _notification(session, owner, request.notification_config)
    if changes.get("enabled") is not None:
        row.enabled = changes["enabled"]
    if "metadata" in changes:
        row.metadata_ = changes["metadata"]
    if row.source == "system":
        row.next_check_at = utcnow() if row.enabled else None  # a changed condition is checked at once
    row.updated_at = utcnow()
    return _save(session, row, "alert.updated")


def delete_alert(session: Session, owner: Owner, identifier: str) -> str:
    row = get_alert(session, owner, identifier)
    alert_event(session, "alert.deleted", row)
    session.delete(row)
    session.commit()
    return row.alert_id


ALERT_FIELDS = FieldMap(
    columns={
        "alert_id": Alert.alert_id,
        "name": Alert.name,
        "description": Alert.description,
        "source": Alert.source,
        "retriever_id": Alert.retriever_id,
        "enabled": Alert.enabled,
        "cooldown_seconds": Alert.cooldown_seconds,
        "last_fired_at": Alert.last_fired_at,
        "created_at": Alert.created_at,
        "updated_at": Alert.updated_at,
    },
    json_columns={"metadata": Alert.metadata_, "condition": Alert.condition},
)


def list_alerts(session: Session, owner: Owner, request: ListAlertsRequest, page: PageRequest) -> tuple[Page, int]:
    """The owner's alerts, narrowed by `search` (case-sensitive when asked) and `filters`, sorted by `sort`."""
    query: Select[Any] = select(Alert).where(_owned(owner))
    if request.search:
        query = query.where(_search(request.search, request.case_sensitive))
    return list_page(
        session,
        query,
        ALERT_FIELDS,
        ListQuery(request.filters, request.case_sensitive, None, [request.sort.model_dump()] if request.sort else None),
        search_columns=(),
        tie_break=(Alert.created_at.desc(), Alert.alert_id),
        page=page,
    )


def _search(search: str, case_sensitive: bool) -> ColumnElement[bool]:
    pattern = f"%{search.replace('%', '').replace('_', '')}%"
    columns = (Alert.alert_id, Alert.name, Alert.description)
    if case_sensitive:
        return or_(*(c.like(pattern) for c in columns))
    return or_(*(func.lower(c).like(pattern.lower()) for c in columns))


def list_stats(session: Session, owner: Owner) -> dict[str, Any]:
    """AlertListStats over every alert of the owner."""
    rows = session.execute(select(Alert.enabled, Alert.notification_config).where(_owned(owner))).all()
    by_channel: dict[str, int] = {}
    for _enabled, config in rows:
        for kind in {c.get("channel_type") for c in (config or {}).get("channels") or []}:
            by_channel[str(kind)] = by_channel.get(str(kind), 0) + 1
    enabled = sum(1 for e, _c in rows if e)
    return {
        "total_alerts": len(rows),
        "enabled_alerts": enabled,
        "disabled_alerts": len(rows) - enabled,
        "alerts_by_channel_type": by_channel,
    }


def alert_event(session: Session, event_type: str, row: Alert, **extra: Any) -> None:
    emit(
        session,
        event_type,
        org_id=row.org_id,
        namespace_id=row.namespace_id,
        resource_id=row.alert_id,
        payload={
            "alert_id": row.alert_id,
            "name": row.name,
            "source": row.source,
            "retriever_id": row.retriever_id,
            "system_condition": row.system_condition,
            "scope": "organization" if row.namespace_id is None else "namespace",
            **extra,
        },
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
        "source": row.source,
        "retriever_id": row.retriever_id,
        "system_condition": row.system_condition,
        "namespace_selector": row.namespace_selector,
        "trigger_on": condition.get("trigger_on", "results") if row.source == "retriever" else None,
        "min_count": condition.get("min_count"),
        "threshold": condition.get("threshold"),
        "inputs": row.inputs,
        "cooldown_seconds": row.cooldown_seconds,
        "renotify_interval_seconds": row.renotify_interval_seconds,
        "last_fired_at": isoformat(row.last_fired_at),
        "notification_config": row.notification_config,
        "enabled": row.enabled,
        "created_at": isoformat(row.created_at),
        "updated_at": isoformat(row.updated_at),
        "metadata": row.metadata_,
    }
