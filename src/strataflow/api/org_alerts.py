"""Organisation alerts (AlertsApi.*_org_alert_organizations): alerts that belong to the
organisation rather than a namespace. They share everything with namespace alerts
(services/alerts): a retriever alert runs its retriever (by id, in any namespace of the
organisation) in that retriever's namespace; a system alert measures the namespaces its
`namespace_selector` names (all of the organisation by default).

Like every org-scoped route, an X-Namespace header is tolerated (and must name a namespace of
the caller); it does not narrow which organisation alerts are seen.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from strataflow.api.alerts import list_page
from strataflow.api.deps import DbDep, OptionalScopeDep, PageDep, PrincipalDep, ReadDbDep, RuntimeDep
from strataflow.schemas.alerts import CreateAlertRequest, ExecuteAlertRequest, ListAlertsRequest, PatchAlertRequest
from strataflow.schemas.common import ERROR_RESPONSES
from strataflow.services.alerts import crud, executions
from strataflow.services.alerts.evaluate import evaluate, execution_view
from strataflow.services.tenancy.scope import Principal

router = APIRouter(prefix="/v1/organizations/alerts", tags=["Alerts"], responses=ERROR_RESPONSES)


def _owner(principal: Principal) -> crud.AlertOwner:
    return crud.AlertOwner(principal.org_id, None)


@router.post("")
def create_org_alert(
    request: CreateAlertRequest, principal: PrincipalDep, _namespace: OptionalScopeDep, session: DbDep
) -> dict[str, Any]:
    return crud.alert_view(crud.create_alert(session, _owner(principal), request))


@router.get("")
def list_org_alerts(
    principal: PrincipalDep,
    _namespace: OptionalScopeDep,
    session: ReadDbDep,
    page: PageDep,
    request: ListAlertsRequest | None = None,
) -> dict[str, Any]:
    return list_page(session, _owner(principal), page, request or ListAlertsRequest())


@router.post("/list")
def search_org_alerts(
    principal: PrincipalDep,
    _namespace: OptionalScopeDep,
    session: ReadDbDep,
    page: PageDep,
    request: ListAlertsRequest | None = None,
) -> dict[str, Any]:
    return list_page(session, _owner(principal), page, request or ListAlertsRequest())


@router.get("/{alert_identifier}")
def get_org_alert(
    alert_identifier: str, principal: PrincipalDep, _namespace: OptionalScopeDep, session: ReadDbDep
) -> dict[str, Any]:
    return crud.alert_view(crud.get_alert(session, _owner(principal), alert_identifier))


@router.patch("/{alert_identifier}")
def patch_org_alert(
    alert_identifier: str,
    request: PatchAlertRequest,
    principal: PrincipalDep,
    _namespace: OptionalScopeDep,
    session: DbDep,
) -> dict[str, Any]:
    return crud.alert_view(crud.patch_alert(session, _owner(principal), alert_identifier, request))


@router.delete("/{alert_identifier}")
def delete_org_alert(
    alert_identifier: str, principal: PrincipalDep, _namespace: OptionalScopeDep, session: DbDep
) -> dict[str, Any]:
    deleted = crud.delete_alert(session, _owner(principal), alert_identifier)
    return {"success": True, "alert_id": deleted, "message": f"Alert {deleted} deleted"}


@router.get("/{alert_identifier}/executions")
def list_org_alert_executions(
    alert_identifier: str, principal: PrincipalDep, _namespace: OptionalScopeDep, session: ReadDbDep, page: PageDep
) -> dict[str, Any]:
    """(extension) An organisation alert's executions, newest first."""
    alert = crud.get_alert(session, _owner(principal), alert_identifier)
    rows, pagination, total = executions.list_executions(session, None, alert.alert_id, page)
    return {"results": [execution_view(r) for r in rows], "pagination": pagination, "total_count": total}


@router.post("/{alert_identifier}/execute")
def execute_org_alert(
    alert_identifier: str,
    principal: PrincipalDep,
    _namespace: OptionalScopeDep,
    runtime: RuntimeDep,
    request: ExecuteAlertRequest | None = None,
) -> dict[str, Any]:
    """(extension) Evaluate now, as POST /v1/alerts/{id}/execute does for a namespace alert."""
    body = request or ExecuteAlertRequest()
    owner = _owner(principal)
    return evaluate(runtime.db, runtime.index, runtime.blobs, owner, alert_identifier, "on_demand", inputs=body.inputs)
