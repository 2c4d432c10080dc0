"""Retriever interactions: user signals on results (click, purchase, dwell, ...), single and bulk."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from strataflow.api.deps import DbDep, PageDep, ReadDbDep, ScopeDep
from strataflow.schemas.common import ERROR_RESPONSES
from strataflow.schemas.evaluations import BulkInteractionsRequest, ListInteractionsRequest, SearchInteraction
from strataflow.services.retrievers import interactions as service

router = APIRouter(prefix="/v1/retrievers/interactions", tags=["Retriever Interactions"], responses=ERROR_RESPONSES)


@router.post("")
def create_interaction(request: SearchInteraction, scope: ScopeDep, session: DbDep) -> dict[str, Any]:
    return service.interaction_view(service.create_interaction(session, scope, request))


@router.post("/batch")
def create_interactions(request: BulkInteractionsRequest, scope: ScopeDep, session: DbDep) -> dict[str, Any]:
    rows, errors = service.create_interactions(session, scope, request)
    return {
        "created": len(rows),
        "failed": len(errors),
        "errors": errors,
        "results": [{"index": i, "interaction_id": row.interaction_id, "status": "created"} for i, row in rows],
    }


@router.post("/list")
def list_interactions(
    scope: ScopeDep, session: ReadDbDep, page: PageDep, request: ListInteractionsRequest | None = None
) -> dict[str, Any]:
    rows, pagination, total = service.list_interactions(session, scope, request or ListInteractionsRequest(), page)
    views = [service.interaction_view(r) for r in rows]
    return {"results": views, "items": views, "total": total, "pagination": pagination}


@router.get("/{interaction_id}")
def get_interaction(interaction_id: str, scope: ScopeDep, session: ReadDbDep) -> dict[str, Any]:
    return service.interaction_view(service.get_interaction(session, scope, interaction_id))


@router.delete("/{interaction_id}")
def delete_interaction(interaction_id: str, scope: ScopeDep, session: DbDep) -> dict[str, Any]:
    deleted = service.delete_interaction(session, scope, interaction_id)
    return {"success": True, "interaction_id": deleted, "message": f"Interaction {deleted} deleted"}
