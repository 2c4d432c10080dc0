"""Document lineage: a document's chain back to its object, and an object's documents."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from strataflow.api.deps import ReadDbDep, RuntimeDep, ScopeDep
from strataflow.schemas.common import ERROR_RESPONSES
from strataflow.schemas.documents import DocumentLineageResponse
from strataflow.services.collections.sources import get_collection
from strataflow.services.documents import lineage as service
from strataflow.services.documents.model import document_view

router = APIRouter(tags=["Document Lineage"], responses=ERROR_RESPONSES)


@router.get("/v1/collections/{collection_id}/documents/{document_id}/lineage", response_model=DocumentLineageResponse)
def document_lineage(
    collection_id: str, document_id: str, scope: ScopeDep, session: ReadDbDep, runtime: RuntimeDep
) -> dict[str, Any]:
    return service.document_lineage(runtime.index, get_collection(session, scope, collection_id), document_id)


def _split(values: list[str] | None) -> list[str] | None:
    """collection_ids may come repeated or comma-separated."""
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()] or None


@router.get("/v1/objects/{object_id}/documents")
def documents_by_object(
    object_id: str,
    scope: ScopeDep,
    session: ReadDbDep,
    runtime: RuntimeDep,
    collection_ids: Annotated[list[str] | None, Query()] = None,
) -> dict[str, Any]:
    found, collections = service.documents_by_object(session, runtime.index, scope, object_id, _split(collection_ids))
    documents = [document_view(d) for c in collections for d in found.get(c.collection_id, [])]
    return {
        "object_id": object_id,
        "total": len(documents),
        "documents": documents,
        "by_collection": {
            c.collection_id: len(found.get(c.collection_id, [])) for c in collections if found.get(c.collection_id)
        },
    }


@router.get("/v1/objects/{object_id}/decomposition-tree")
def decomposition_tree(
    object_id: str, scope: ScopeDep, session: ReadDbDep, runtime: RuntimeDep, include_document_ids: bool = False
) -> dict[str, Any]:
    return service.decomposition_tree(session, runtime.index, scope, object_id, include_document_ids)
