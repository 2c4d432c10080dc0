"""Organisation webhooks (WebhooksApi) and their delivery log (an extension of the contract).

Webhooks belong to the organisation; like every org-scoped route, an X-Namespace header is
tolerated, and must name a namespace of the caller (a foreign one is a 404)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from strataflow.api.deps import DbDep, OptionalScopeDep, PageDep, PrincipalDep, ReadDbDep, RuntimeDep
from strataflow.schemas.common import ERROR_RESPONSES
from strataflow.schemas.webhooks import ListWebhooksRequest, WebhookRequest
from strataflow.services.events import feed
from strataflow.services.events import webhooks as service

router = APIRouter(prefix="/v1/organizations/webhooks", tags=["Webhooks"], responses=ERROR_RESPONSES)


@router.post("")
def create_webhook(
    request: WebhookRequest, principal: PrincipalDep, _namespace: OptionalScopeDep, runtime: RuntimeDep, session: DbDep
) -> dict[str, Any]:
    return service.webhook_view(service.create_webhook(session, runtime.webhook_rules, principal.org_id, request))


@router.post("/list")
def list_webhooks(
    principal: PrincipalDep,
    _namespace: OptionalScopeDep,
    session: ReadDbDep,
    page: PageDep,
    request: ListWebhooksRequest | None = None,
) -> dict[str, Any]:
    body = request or ListWebhooksRequest()
    result, total = service.list_webhooks(session, principal.org_id, body.event_type, body.is_active, page)
    pagination = {**result.pagination, "total": total}
    return {"results": [service.webhook_view(r) for r in result.rows], "pagination": pagination, "total": total}


@router.get("/{identifier}")
def get_webhook(
    identifier: str, principal: PrincipalDep, _namespace: OptionalScopeDep, session: ReadDbDep
) -> dict[str, Any]:
    return service.webhook_view(service.get_webhook(session, principal.org_id, identifier))


@router.put("/{identifier}")
def update_webhook(
    identifier: str,
    request: WebhookRequest,
    principal: PrincipalDep,
    _namespace: OptionalScopeDep,
    runtime: RuntimeDep,
    session: DbDep,
) -> dict[str, Any]:
    row = service.get_webhook(session, principal.org_id, identifier)
    return service.webhook_view(service.replace_webhook(session, runtime.webhook_rules, row, request))


@router.delete("/{identifier}", status_code=204, response_class=Response)
def delete_webhook(identifier: str, principal: PrincipalDep, _namespace: OptionalScopeDep, session: DbDep) -> Response:
    service.delete_webhook(session, service.get_webhook(session, principal.org_id, identifier))
    return Response(status_code=204)


@router.get("/{identifier}/deliveries")
def list_deliveries(
    identifier: str,
    principal: PrincipalDep,
    _namespace: OptionalScopeDep,
    session: ReadDbDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """The delivery log: each delivery of this webhook, newest first, with every attempt."""
    row = service.get_webhook(session, principal.org_id, identifier)
    results = feed.delivery_log(session, row.webhook_id, offset, limit)
    return {"webhook_id": row.webhook_id, "delivery_health": row.delivery_health, "results": results}
