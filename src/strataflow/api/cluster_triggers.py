"""Cluster triggers: run a cluster on an interval or a cron schedule (the shared trigger machinery)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from strataflow.api.deps import DbDep, ReadDbDep, ScopeDep
from strataflow.errors import BadRequestError
from strataflow.schemas.clusters import (
    CreateTriggerRequest,
    ExecuteClusterRequest,
    ListTriggersRequest,
    TriggerHistoryRequest,
    UpdateTriggerRequest,
)
from strataflow.schemas.common import ERROR_RESPONSES
from strataflow.services.clusters.crud import get_cluster
from strataflow.services.triggers import crud as triggers
from strataflow.store.pagination import PageRequest

router = APIRouter(prefix="/v1/clusters/triggers", tags=["Cluster Triggers"], responses=ERROR_RESPONSES)
TARGET = "cluster"


def _view(row: Any) -> dict[str, Any]:
    return triggers.trigger_view(row, "cluster_id")


@router.post("")
def create_trigger(request: CreateTriggerRequest, scope: ScopeDep, session: DbDep) -> dict[str, Any]:
    cluster = get_cluster(session, scope, request.cluster_id)
    execution = request.execution_config.model_dump() if request.execution_config else {}
    execution["collection_ids"] = execution.get("collection_ids") or list(cluster.collection_ids)
    execution["config"] = execution.get("config") or {}
    try:  # what the run would get, checked now rather than at the first firing
        ExecuteClusterRequest.model_validate(execution.get("config") or {})
    except ValueError as exc:
        raise BadRequestError(f"execution_config.config is not a valid execute request: {exc}") from None
    row = triggers.create_trigger(
        session,
        scope,
        TARGET,
        cluster.cluster_id,
        request.trigger_type,
        request.schedule_config,
        execution,
        request.description,
        request.status,
    )
    return _view(row)


@router.post("/list")
def list_triggers(scope: ScopeDep, session: ReadDbDep, request: ListTriggersRequest | None = None) -> dict[str, Any]:
    body = request or ListTriggersRequest()
    where = {"target_id": body.cluster_id, "status": body.status, "trigger_type": body.trigger_type}
    sort = {"field": body.sort_by, "direction": body.direction}
    page = PageRequest(limit=body.limit, offset=body.offset)
    rows, total = triggers.list_triggers(session, scope, TARGET, where, sort, page)
    return {"results": [_view(r) for r in rows], "total": total, "offset": body.offset, "limit": body.limit}


@router.get("/{trigger_id}")
def get_trigger(trigger_id: str, scope: ScopeDep, session: ReadDbDep) -> dict[str, Any]:
    return _view(triggers.get_trigger(session, scope, TARGET, trigger_id))


@router.patch("/{trigger_id}")
def update_trigger(trigger_id: str, request: UpdateTriggerRequest, scope: ScopeDep, session: DbDep) -> dict[str, Any]:
    row = triggers.get_trigger(session, scope, TARGET, trigger_id)
    return _view(triggers.update_trigger(session, row, request.schedule_config, request.description, request.status))


@router.delete("/{trigger_id}")
def delete_trigger(trigger_id: str, scope: ScopeDep, session: DbDep) -> dict[str, Any]:
    deleted = triggers.delete_trigger(session, triggers.get_trigger(session, scope, TARGET, trigger_id))
    return {"success": True, "trigger_id": deleted, "message": f"Trigger {deleted} deleted"}


@router.post("/{trigger_id}/pause")
def pause_trigger(trigger_id: str, scope: ScopeDep, session: DbDep) -> dict[str, Any]:
    row = triggers.get_trigger(session, scope, TARGET, trigger_id)
    return _view(triggers.update_trigger(session, row, None, None, "paused"))


@router.post("/{trigger_id}/resume")
def resume_trigger(trigger_id: str, scope: ScopeDep, session: DbDep) -> dict[str, Any]:
    row = triggers.get_trigger(session, scope, TARGET, trigger_id)
    return _view(triggers.update_trigger(session, row, None, None, "active"))


@router.post("/{trigger_id}/history")
def trigger_history(
    trigger_id: str, scope: ScopeDep, session: ReadDbDep, request: TriggerHistoryRequest | None = None
) -> dict[str, Any]:
    body = request or TriggerHistoryRequest()
    row = triggers.get_trigger(session, scope, TARGET, trigger_id)
    items, total = triggers.history(session, row, body.offset, body.limit, body.status_filter)
    return {
        "trigger_id": row.trigger_id,
        "executions": items,
        "total": total,
        "offset": body.offset,
        "limit": body.limit,
    }
