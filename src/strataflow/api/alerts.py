"""Namespace alerts (AlertsApi): a saved retriever, a condition, a cooldown, webhooks to notify;
their executions; and `POST /v1/alerts/{id}/execute` (an extension) to evaluate one on demand."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from strataflow.api.deps import DbDep, PageDep, ReadDbDep, RuntimeDep, ScopeDep
from strataflow.schemas.alerts import CreateAlertRequest, ExecuteAlertRequest, ListAlertsRequest, PatchAlertRequest
from strataflow.schemas.common import ERROR_RESPONSES
from strataflow.services.alerts import crud, executions
from strataflow.services.alerts.evaluate import evaluate, execution_view

router = APIRouter(prefix="/v1/alerts", tags=["Alerts"], responses=ERROR_RESPONSES)


@router.post("")
def create_alert(request: CreateAlertRequest, scope: ScopeDep, session: DbDep) -> dict[str, Any]:
    return crud.alert_view(crud.create_alert(session, scope, request))


def list_page(session: Any, owner: crud.Owner, page: Any, body: ListAlertsRequest) -> dict[str, Any]:
    """ListAlertsResponse for a namespace's alerts or the organisation's own (api/org_alerts.py)."""
    result, total = crud.list_alerts(session, owner, body, page)
    return {
        "results": [crud.alert_view(r) for r in result.rows],
        "pagination": {**result.pagination, "total": total},
        "total_count": total,
        "stats": crud.list_stats(session, owner),
    }


_list = list_page


@router.get("")
def list_alerts(
    scope: ScopeDep, session: ReadDbDep, page: PageDep, request: ListAlertsRequest | None = None
) -> dict[str, Any]:
    """The SDK sends its ListAlertsRequest as a body on the GET too."""
    return _list(session, scope, page, request or ListAlertsRequest())


@router.post("/list")
def search_alerts(
    scope: ScopeDep, session: ReadDbDep, page: PageDep, request: ListAlertsRequest | None = None
) -> dict[str, Any]:
    return _list(session, scope, page, request or ListAlertsRequest())


@router.get("/executions")
def list_all_executions(scope: ScopeDep, session: ReadDbDep, page: PageDep) -> dict[str, Any]:
    rows, pagination, total = executions.list_executions(session, scope, None, page)
    return {"results": [execution_view(r) for r in rows], "pagination": pagination, "total_count": total}


@router.get("/executions/{execution_id}")
def get_execution(execution_id: str, scope: ScopeDep, session: ReadDbDep) -> dict[str, Any]:
    return execution_view(executions.get_execution(session, scope, execution_id))


@router.get("/{alert_identifier}")
def get_alert(alert_identifier: str, scope: ScopeDep, session: ReadDbDep) -> dict[str, Any]:
    return crud.alert_view(crud.get_alert(session, scope, alert_identifier))


@router.patch("/{alert_identifier}")
def patch_alert(alert_identifier: str, request: PatchAlertRequest, scope: ScopeDep, session: DbDep) -> dict[str, Any]:
    return crud.alert_view(crud.patch_alert(session, scope, alert_identifier, request))


@router.delete("/{alert_identifier}")
def delete_alert(alert_identifier: str, scope: ScopeDep, session: DbDep) -> dict[str, Any]:
    deleted = crud.delete_alert(session, scope, alert_identifier)
    return {"success": True, "alert_id": deleted, "message": f"Alert {deleted} deleted"}


@router.get("/{alert_identifier}/executions")
def list_alert_executions(alert_identifier: str, scope: ScopeDep, session: ReadDbDep, page: PageDep) -> dict[str, Any]:
    alert = crud.get_alert(session, scope, alert_identifier)
    rows, pagination, total = executions.list_executions(session, scope, alert.alert_id, page)
    return {"results": [execution_view(r) for r in rows], "pagination": pagination, "total_count": total}


@router.get("/{alert_identifier}/results")
def latest_result(alert_identifier: str, scope: ScopeDep, session: ReadDbDep) -> dict[str, Any]:
    alert = crud.get_alert(session, scope, alert_identifier)
    return execution_view(executions.latest_execution(session, alert.alert_id))


@router.post("/{alert_identifier}/execute")
def execute_alert(
    alert_identifier: str, scope: ScopeDep, runtime: RuntimeDep, request: ExecuteAlertRequest | None = None
) -> dict[str, Any]:
    """Evaluate now: run the retriever, test the condition, notify when it holds (outside the cooldown)."""
    body = request or ExecuteAlertRequest()
    return evaluate(runtime.db, runtime.index, runtime.blobs, scope, alert_identifier, "on_demand", inputs=body.inputs)
