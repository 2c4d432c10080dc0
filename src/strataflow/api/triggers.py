"""Generic triggers (TriggersApi, /v1/triggers): a schedule (interval, cron), an event or a condition
that runs an action on a resource: a cluster, an alert, a retriever, a taxonomy enrichment, a
collection re-run or a batch re-run.
They are the same triggers as /v1/clusters/triggers (one table, one firing loop, one claim rule)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.api.deps import DbDep, ReadDbDep, RuntimeDep, ScopeDep
from strataflow.clock import as_utc, isoformat, utcnow
from strataflow.errors import BadRequestError, not_found
from strataflow.schemas.common import ERROR_RESPONSES
from strataflow.schemas.triggers import CreateTriggerRequest, ListTriggersRequest, UpdateTriggerRequest
from strataflow.services.tenancy import tasks as task_service
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.services.triggers import crud as triggers
from strataflow.services.triggers.actions import ACTIONS, check_action
from strataflow.statuses import TaskType
from strataflow.store.tables import Task, Trigger

router = APIRouter(prefix="/v1/triggers", tags=["Triggers"], responses=ERROR_RESPONSES)
TARGETS = {target: action for action, (target, _key) in ACTIONS.items()}


def _get(session: Session, scope: NamespaceScope, trigger_id: str) -> Trigger:
    row = session.scalar(
        select(Trigger).where(
            Trigger.trigger_id == trigger_id,
            Trigger.namespace_id == scope.namespace_id,
            Trigger.target_type.in_(sorted(TARGETS)),
        )
    )
    if row is None:
        raise not_found("Trigger", trigger_id)
    return row


def _view(row: Trigger) -> dict[str, Any]:
    action_type = TARGETS.get(row.target_type, row.target_type)
    key = ACTIONS[action_type][1] if action_type in ACTIONS else "resource_id"
    config = dict((row.execution_config or {}).get("action_config") or {key: row.target_id})
    next_at = row.next_run_at
    return {
        "trigger_id": row.trigger_id,
        "namespace_id": row.namespace_id,
        "internal_id": row.org_id,
        "action_type": action_type,
        "action_config": config,
        "trigger_type": "conditional" if row.trigger_type == "condition" else row.trigger_type,
        "schedule_config": row.schedule_config,
        "status": row.status,
        "last_triggered_at": isoformat(row.last_triggered_at),
        "last_execution_task_id": row.last_job_id,
        "next_scheduled_at": isoformat(next_at),
        "execution_count": row.execution_count,
        "consecutive_failures": row.consecutive_failures,
        "last_execution_status": row.last_status,
        "last_execution_error": row.last_error,
        "name": row.name,
        "description": row.description,
        "created_at": isoformat(row.created_at),
        "updated_at": isoformat(row.updated_at),
        "is_overdue": bool(row.status == "active" and next_at is not None and as_utc(next_at) < utcnow()),
    }


@router.post("")
def create_trigger(request: CreateTriggerRequest, scope: ScopeDep, session: DbDep) -> dict[str, Any]:
    target_id = check_action(session, scope, request.action_type, request.action_config)
    target_type = ACTIONS[request.action_type][0]
    execution: dict[str, Any] = {"action_config": request.action_config}
    if request.action_type == "cluster":
        execution["config"] = {}  # a scheduled run runs the cluster as defined
    row = triggers.create_trigger(
        session,
        scope,
        target_type,
        target_id,
        request.trigger_type,
        request.schedule_config,
        execution,
        request.description,
        request.status,
        name=request.name,
    )
    return _view(row)


def _list(session: Session, scope: NamespaceScope, body: ListTriggersRequest) -> dict[str, Any]:
    query = select(Trigger).where(Trigger.namespace_id == scope.namespace_id, Trigger.target_type.in_(sorted(TARGETS)))
    if body.action_type:
        if body.action_type not in ACTIONS:
            return {"results": [], "total": 0, "offset": body.offset, "limit": body.limit}
        query = query.where(Trigger.target_type == ACTIONS[body.action_type][0])
    if body.trigger_type:
        query = query.where(Trigger.trigger_type == body.trigger_type)
    if body.status:
        query = query.where(Trigger.status == body.status)
    if body.resource_id:
        query = query.where(Trigger.target_id == body.resource_id)
    rows = list(session.scalars(query))
    column = body.sort_by if body.sort_by in ("created_at", "updated_at", "name", "next_run_at") else "created_at"
    rows.sort(
        key=lambda r: (getattr(r, column) is None, str(getattr(r, column) or "")), reverse=body.direction == "desc"
    )
    page = rows[body.offset : body.offset + body.limit]
    return {"results": [_view(r) for r in page], "total": len(rows), "offset": body.offset, "limit": body.limit}


@router.get("")
def list_triggers(
    scope: ScopeDep,
    session: ReadDbDep,
    action_type: str | None = None,
    trigger_type: str | None = None,
    status: str | None = None,
    resource_id: str | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    body = ListTriggersRequest(
        action_type=action_type,
        trigger_type=trigger_type,
        status=status,
        resource_id=resource_id,
        offset=offset,
        limit=limit,
    )
    return _list(session, scope, body)


@router.post("/list")
def search_triggers(scope: ScopeDep, session: ReadDbDep, request: ListTriggersRequest | None = None) -> dict[str, Any]:
    return _list(session, scope, request or ListTriggersRequest())


@router.get("/{trigger_id}")
def get_trigger(trigger_id: str, scope: ScopeDep, session: ReadDbDep) -> dict[str, Any]:
    return _view(_get(session, scope, trigger_id))


@router.patch("/{trigger_id}")
def update_trigger(trigger_id: str, request: UpdateTriggerRequest, scope: ScopeDep, session: DbDep) -> dict[str, Any]:
    row = _get(session, scope, trigger_id)
    return _view(
        triggers.update_trigger(
            session, row, request.schedule_config, request.description, request.status, request.name
        )
    )


@router.delete("/{trigger_id}", status_code=204, response_class=Response)
def delete_trigger(trigger_id: str, scope: ScopeDep, session: DbDep) -> Response:
    triggers.delete_trigger(session, _get(session, scope, trigger_id))
    return Response(status_code=204)


@router.post("/{trigger_id}/pause")
def pause_trigger(trigger_id: str, scope: ScopeDep, session: DbDep) -> dict[str, Any]:
    return _view(triggers.update_trigger(session, _get(session, scope, trigger_id), None, None, "paused"))


@router.post("/{trigger_id}/resume")
def resume_trigger(trigger_id: str, scope: ScopeDep, session: DbDep) -> dict[str, Any]:
    return _view(triggers.update_trigger(session, _get(session, scope, trigger_id), None, None, "active"))


@router.post("/{trigger_id}/execute")
def execute_trigger(trigger_id: str, scope: ScopeDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Fire now, off schedule. Answers the task it queued; an alert or retriever action runs at once,
    and its execution is answered in the task shape (task_id = the execution id)."""
    with runtime.db.read_session() as session:
        row = _get(session, scope, trigger_id)
        session.expunge(row)
    if runtime.triggers is None:
        raise BadRequestError("This process runs no trigger loop")
    status, job_id, error = runtime.triggers.fire_now(row)
    if status != "queued" or job_id is None:
        raise BadRequestError(f"The trigger did not run: {error}", {"status": status})
    with runtime.db.read_session() as session:
        task = session.get(Task, job_id)
        if task is not None:
            return task_service.task_payload(task)
    return {
        "task_id": job_id,
        "task_type": TaskType.EVALUATIONS_RUN.value,
        "status": "COMPLETED",
        "inputs": [{"trigger_id": trigger_id}],
        "outputs": [{"execution_id": job_id}],
        "additional_data": {"trigger_id": trigger_id, "action_type": TARGETS.get(row.target_type)},
        "error": None,
    }


@router.get("/{trigger_id}/history")
def trigger_history(
    trigger_id: str,
    scope: ScopeDep,
    session: ReadDbDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    row = _get(session, scope, trigger_id)
    items, total = triggers.history(session, row, offset, limit)
    executions = [
        {"task_id": i["job_id"], "triggered_at": i["triggered_at"], "status": i["status"], "error": i["error"]}
        for i in items
    ]
    return {"trigger_id": row.trigger_id, "executions": executions, "total": total, "offset": offset, "limit": limit}
