"""Triggers: create, read, list, change, pause, resume, delete, history. Generic over the target:
the caller checks the target exists and says what kind it is."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from strataflow.clock import isoformat, utcnow
from strataflow.errors import BadRequestError, not_found
from strataflow.ids import new_id
from strataflow.services.collections.sources import get_collection
from strataflow.services.events.outbox import emit
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.services.triggers.schedule import next_fire, normalise, schedule_collection
from strataflow.store.filters import FieldMap
from strataflow.store.pagination import ListQuery, PageRequest, list_page
from strataflow.store.tables import Task, Trigger, TriggerFiring
from strataflow.transitions import move_trigger

STATUSES = ("active", "paused", "disabled")


def create_trigger(
    session: Session,
    scope: NamespaceScope,
    target_type: str,
    target_id: str,
    trigger_type: str,
    schedule_config: dict[str, Any],
    execution_config: dict[str, Any],
    description: str | None,
    status: str | None,
    name: str | None = None,
) -> Trigger:
    schedule = normalise(trigger_type, schedule_config)
    _check_schedule(session, scope, trigger_type, schedule)
    state = _status(status or "active")
    now = utcnow()
    row = Trigger(
        trigger_id=new_id("trigger"),
        org_id=scope.org_id,
        namespace_id=scope.namespace_id,
        target_type=target_type,
        target_id=target_id,
        trigger_type=trigger_type,
        schedule_config=schedule,
        execution_config=execution_config,
        description=description,
        name=name,
        next_run_at=next_fire(trigger_type, schedule, now) if state == "active" else None,
        created_at=now,
        updated_at=now,
    )
    move_trigger(session, row, state, "created")
    session.add(row)
    trigger_event(session, "trigger.created", row)
    session.commit()
    return row


def _check_schedule(session: Session, scope: NamespaceScope, trigger_type: str, schedule: dict[str, Any]) -> None:
    """A collection the schedule counts documents of must exist in the trigger's namespace."""
    collection_id = schedule_collection(trigger_type, schedule)
    if collection_id is not None:  # stored by id (a name given is resolved now)
        resolved = get_collection(session, scope, collection_id).collection_id
        schedule["resource_id" if trigger_type == "event" else "collection_id"] = resolved


def _status(value: str) -> str:
    if value not in STATUSES:
        raise BadRequestError(f"Unknown trigger status '{value}'", {"status": value, "accepted": list(STATUSES)})
    return value


def get_trigger(session: Session, scope: NamespaceScope, target_type: str, trigger_id: str) -> Trigger:
    row = session.scalar(
        select(Trigger).where(
            Trigger.trigger_id == trigger_id,
            Trigger.target_type == target_type,
            Trigger.namespace_id == scope.namespace_id,
        )
    )
    if row is None:
        raise not_found("Trigger", trigger_id)
    return row


TRIGGER_FIELDS = FieldMap(
    columns={
        "trigger_id": Trigger.trigger_id,
        "trigger_type": Trigger.trigger_type,
        "status": Trigger.status,
        "description": Trigger.description,
        "next_scheduled_at": Trigger.next_run_at,
        "last_triggered_at": Trigger.last_triggered_at,
        "execution_count": Trigger.execution_count,
        "consecutive_failures": Trigger.consecutive_failures,
        "last_execution_status": Trigger.last_status,
        "created_at": Trigger.created_at,
        "updated_at": Trigger.updated_at,
    }
)


def list_triggers(
    session: Session,
    scope: NamespaceScope,
    target_type: str,
    where: dict[str, str | None],
    sort: dict[str, str],
    page: PageRequest,
) -> tuple[list[Trigger], int]:
    """The target type's triggers narrowed by `where` (`target_id`, `status`, `trigger_type`), sorted by
    `sort` ({field, direction}; an unknown field is a 400) and then newest first."""
    query = select(Trigger).where(Trigger.namespace_id == scope.namespace_id, Trigger.target_type == target_type)
    if where.get("target_id"):
        query = query.where(Trigger.target_id == where["target_id"])
    if where.get("status"):
        query = query.where(Trigger.status == _status(str(where["status"])))
    if where.get("trigger_type"):
        query = query.where(Trigger.trigger_type == where["trigger_type"])
    result, total = list_page(
        session,
        query,
        TRIGGER_FIELDS,
        ListQuery(sorts=[sort]),
        search_columns=(),
        tie_break=(Trigger.created_at.desc(), Trigger.trigger_id),
        page=page,
    )
    return result.rows, total


def update_trigger(
    session: Session,
    row: Trigger,
    schedule_config: dict[str, Any] | None,
    description: str | None,
    status: str | None,
    name: str | None = None,
) -> Trigger:
    """A new schedule or status takes effect from now (the next firing is recomputed)."""
    if schedule_config is not None:
        row.schedule_config = normalise(row.trigger_type, schedule_config)
        _check_schedule(
            session, NamespaceScope(row.org_id, row.namespace_id, ""), row.trigger_type, row.schedule_config
        )
        row.pending_events = 0
    if description is not None:
        row.description = description
    if name is not None:
        row.name = name
    event_type = "trigger.updated"
    if status is not None:
        before = row.status
        move_trigger(session, row, _status(status), "updated")
        if status == "active":
            row.consecutive_failures = 0
        if before != row.status and row.status in ("paused", "active"):
            event_type = "trigger.paused" if row.status == "paused" else "trigger.resumed"
    row.next_run_at = next_fire(row.trigger_type, row.schedule_config, utcnow()) if row.status == "active" else None
    row.updated_at = utcnow()
    trigger_event(session, event_type, row)
    session.commit()
    return row


def delete_trigger(session: Session, row: Trigger) -> str:
    trigger_id = row.trigger_id
    trigger_event(session, "trigger.deleted", row)
    session.delete(row)
    session.commit()
    return trigger_id


def trigger_event(session: Session, event_type: str, row: Trigger, **extra: Any) -> None:
    payload = {
        "trigger_id": row.trigger_id,
        "target_type": row.target_type,
        "target_id": row.target_id,
        "trigger_type": row.trigger_type,
        "status": row.status,
        "namespace_id": row.namespace_id,
        **extra,
    }
    emit(
        session,
        event_type,
        org_id=row.org_id,
        namespace_id=row.namespace_id,
        resource_id=row.trigger_id,
        payload=payload,
    )


def history(
    session: Session, row: Trigger, offset: int, limit: int, status: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Firings, newest first, each with the current status of the job it started; with `status`,
    only those whose status (the job's, else the firing's) is that one, in any case."""
    query = select(TriggerFiring).where(TriggerFiring.trigger_id == row.trigger_id)
    if status:
        shown = func.lower(func.coalesce(Task.status, TriggerFiring.status))
        query = query.outerjoin(Task, Task.task_id == TriggerFiring.job_id).where(shown == status.lower())
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    firings = list(session.scalars(query.order_by(TriggerFiring.firing_id.desc()).offset(offset).limit(limit)))
    tasks = {
        t.task_id: t
        for t in session.scalars(select(Task).where(Task.task_id.in_([f.job_id for f in firings if f.job_id])))
    }
    items = []
    for firing in firings:
        task = tasks.get(firing.job_id or "")
        outputs = (task.outputs or [{}])[0] if task is not None and task.outputs else {}
        items.append(
            {
                "job_id": firing.job_id or f"firing_{firing.firing_id}",
                "triggered_at": isoformat(firing.fired_at),
                "status": task.status if task is not None else firing.status,
                "error": firing.error or (task.error if task is not None else None),
                "num_clusters": outputs.get("num_clusters") if isinstance(outputs, dict) else None,
            }
        )
    return items, total


def trigger_view(row: Trigger, target_key: str) -> dict[str, Any]:
    return {
        "trigger_id": row.trigger_id,
        target_key: row.target_id,
        "namespace_id": row.namespace_id,
        "internal_id": row.org_id,
        "execution_config": row.execution_config,
        "trigger_type": row.trigger_type,
        "schedule_config": row.schedule_config,
        "status": row.status,
        "last_triggered_at": isoformat(row.last_triggered_at),
        "last_execution_job_id": row.last_job_id,
        "next_scheduled_at": isoformat(row.next_run_at),
        "execution_count": row.execution_count,
        "consecutive_failures": row.consecutive_failures,
        "last_execution_status": row.last_status,
        "last_execution_error": row.last_error,
        "created_at": isoformat(row.created_at),
        "updated_at": isoformat(row.updated_at),
        "description": row.description,
    }
