"""Documents of a collection."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body

from strataflow.api.deps import PageDep, ReadDbDep, RuntimeDep, ScopeDep
from strataflow.errors import ValidationError
from strataflow.index.records import StoredDocument
from strataflow.schemas.common import ERROR_RESPONSES, GenericDeleteResponse
from strataflow.schemas.documents import (
    BatchDeleteDocumentsRequest,
    BatchDeleteDocumentsResponse,
    BatchUpdateDocumentsRequest,
    BatchUpdateDocumentsResponse,
    BulkUpdateDocumentsRequest,
    BulkUpdateDocumentsResponse,
    DocumentAggregationRequest,
    DocumentAggregationResponse,
    DocumentCreateRequest,
    DocumentResponse,
    ListDocumentsRequest,
    ListDocumentsResponse,
)
from strataflow.schemas.validation import validate_as
from strataflow.services.collections.sources import get_collection
from strataflow.services.documents import crud as service
from strataflow.services.documents import events, queries
from strataflow.services.documents.model import document_view
from strataflow.store.pagination import PageRequest
from strataflow.store.tables import Collection

router = APIRouter(
    prefix="/v1/collections/{collection_identifier}/documents", tags=["Collection Documents"], responses=ERROR_RESPONSES
)


def _collection(session: Any, scope: Any, identifier: str) -> Collection:
    return get_collection(session, scope, identifier)


def _page(query: PageRequest, body: ListDocumentsRequest) -> PageRequest:
    """Body values win over query parameters (the SDK puts limit and offset in the body)."""
    return PageRequest(
        limit=body.limit if body.limit is not None else query.limit,
        offset=body.offset if body.offset is not None else query.offset,
        cursor=body.cursor or query.cursor,
        include_total=bool(body.include_total) or query.include_total,
    )


@router.post("", response_model=DocumentResponse)
def create_document(
    collection_identifier: str, request: DocumentCreateRequest, scope: ScopeDep, session: ReadDbDep, runtime: RuntimeDep
) -> dict[str, Any]:
    collection = _collection(session, scope, collection_identifier)
    doc = service.create_document(runtime.index, collection, request)
    events.document_changed(runtime.db, collection, "document.created", doc)
    return document_view(doc)


@router.post("/list", response_model=ListDocumentsResponse)
def list_documents(
    collection_identifier: str,
    scope: ScopeDep,
    session: ReadDbDep,
    runtime: RuntimeDep,
    page: PageDep,
    request: ListDocumentsRequest | None = None,
    return_vectors: bool = False,
    return_presigned_urls: bool = False,
) -> dict[str, Any]:
    request = request or ListDocumentsRequest()
    collection = _collection(session, scope, collection_identifier)
    with_vectors = bool(request.return_vectors) or return_vectors  # either place turns it on
    presign = request.return_url or request.return_presigned_urls or return_presigned_urls
    blobs = runtime.blobs if presign else None
    result = queries.list_documents(runtime.index, collection, request, _page(page, request), with_vectors)

    def view(doc: Any) -> dict[str, Any]:
        return document_view(doc, with_vectors=with_vectors, select=request.select, blobs=blobs)

    if result.groups is not None:
        groups = [{**g, "documents": [view(d) for d in g["documents"]]} for g in result.groups]
        return {
            "groups": groups,
            "group_by_field": request.group_by,
            "pagination": result.pagination,
            "total_documents": result.total,
            "stats": {
                "total_documents": sum(g["count"] for g in groups),
                "avg_blobs_per_document": 0.0,
                "total_groups": len(groups),
                "avg_documents_per_group": sum(g["count"] for g in groups) / len(groups) if groups else 0.0,
            },
        }
    return flat_listing(result.documents, view, result.pagination, result.total)


def flat_listing(
    documents: list[StoredDocument],
    view: Callable[[StoredDocument], dict[str, Any]],
    pagination: dict[str, Any],
    total: int | None,
) -> dict[str, Any]:
    """A ListDocumentsResponse of documents without groups (also the namespace-wide list's)."""
    results = [view(d) for d in documents]
    blob_count = sum(len(d.internal.get("document_blobs") or []) for d in documents)
    return {
        "results": results,
        "pagination": pagination,
        "total_documents": total,
        "stats": {
            "total_documents": total if total is not None else len(results),
            "avg_blobs_per_document": blob_count / len(results) if results else 0.0,
        },
    }


def _json_query(name: str, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        raise ValidationError(
            f"Query parameter '{name}' must be JSON",
            {"validation_errors": [{"type": "json_invalid", "location": f"query.{name}", "message": "invalid JSON"}]},
        ) from None


@router.get("", response_model=ListDocumentsResponse)
def list_documents_get(
    collection_identifier: str,
    scope: ScopeDep,
    session: ReadDbDep,
    runtime: RuntimeDep,
    page: PageDep,
    filters: str | None = None,
    search: str | None = None,
    sort: str | None = None,
    return_vectors: bool = False,
    return_presigned_urls: bool = False,
) -> dict[str, Any]:
    """The GET form: filters and sort as JSON query strings (sort also as `field:direction`)."""
    sort_spec = None
    if sort:
        sort_spec = (
            _json_query("sort", sort)
            if sort.lstrip().startswith("{")
            else dict(zip(("field", "direction"), sort.split(":", 1), strict=False))
        )
    request = validate_as(
        ListDocumentsRequest, {"filters": _json_query("filters", filters), "search": search, "sort": sort_spec}, "query"
    )
    return list_documents(
        collection_identifier, scope, session, runtime, page, request, return_vectors, return_presigned_urls
    )


@router.patch("/bulk", response_model=BulkUpdateDocumentsResponse)
def bulk_update(
    collection_identifier: str,
    request: BulkUpdateDocumentsRequest,
    scope: ScopeDep,
    session: ReadDbDep,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    collection = _collection(session, scope, collection_identifier)
    ids = service.bulk_update(runtime.index, collection, request.filters, request.update_data)
    events.documents_batch(
        runtime.db,
        collection,
        "documents.updated.batch",
        ids,
        filters=request.filters,
        fields=sorted(request.update_data),
    )
    return {"updated_count": len(ids), "message": f"Updated {len(ids)} document(s)"}


@router.post("/batch", response_model=BatchUpdateDocumentsResponse)
def batch_update(
    collection_identifier: str,
    request: BatchUpdateDocumentsRequest,
    scope: ScopeDep,
    session: ReadDbDep,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    collection = _collection(session, scope, collection_identifier)
    results = service.batch_update(runtime.index, collection, request)
    if results and results[0]["document_id"] == "*":  # filter form: one summary line
        fields = sorted(request.update_data or {})
        ids = results[0]["document_ids"]
        events.documents_batch(
            runtime.db, collection, "documents.updated.batch", ids, filters=request.filters, fields=fields
        )
        return {"updated_count": results[0]["updated"], "failed_count": 0, "results": []}
    changed = list(dict.fromkeys(r["document_id"] for r in results if r["success"]))
    fields = sorted({k for u in request.updates or [] for k in u.update_data})
    events.documents_batch(runtime.db, collection, "documents.updated.batch", changed, fields=fields)
    updated = sum(1 for r in results if r["success"])
    return {"updated_count": updated, "failed_count": len(results) - updated, "results": results}


@router.delete("/batch", response_model=BatchDeleteDocumentsResponse)
def batch_delete(
    collection_identifier: str,
    scope: ScopeDep,
    session: ReadDbDep,
    runtime: RuntimeDep,
    request: Annotated[BatchDeleteDocumentsRequest, Body()],
) -> dict[str, Any]:
    collection = _collection(session, scope, collection_identifier)
    results = service.delete_documents(runtime.index, runtime.blobs, collection, request)
    gone = list(dict.fromkeys(r["document_id"] for r in results if r["success"]))
    events.documents_batch(runtime.db, collection, "documents.deleted.batch", gone, filters=request.filters)
    deleted = sum(1 for r in results if r["success"])
    return {"deleted_count": deleted, "failed_count": len(results) - deleted, "results": results}


@router.post("/aggregate", response_model=DocumentAggregationResponse)
def aggregate(
    collection_identifier: str,
    request: DocumentAggregationRequest,
    scope: ScopeDep,
    session: ReadDbDep,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    collection = _collection(session, scope, collection_identifier)
    return queries.aggregate_documents(runtime.index, collection, request)


@router.get("/{document_id}", response_model=DocumentResponse)
def get_document(
    collection_identifier: str,
    document_id: str,
    scope: ScopeDep,
    session: ReadDbDep,
    runtime: RuntimeDep,
    return_presigned_urls: bool = False,
    return_vectors: bool = False,
) -> dict[str, Any]:
    collection = _collection(session, scope, collection_identifier)
    doc = service.get_document(runtime.index, collection, document_id, return_vectors)
    return document_view(doc, with_vectors=return_vectors, blobs=runtime.blobs if return_presigned_urls else None)


@router.put("/{document_id}", response_model=DocumentResponse)
def replace_document(
    collection_identifier: str,
    document_id: str,
    scope: ScopeDep,
    session: ReadDbDep,
    runtime: RuntimeDep,
    body: Annotated[dict[str, Any], Body()],
) -> dict[str, Any]:
    collection = _collection(session, scope, collection_identifier)
    doc = service.update_document(runtime.index, collection, document_id, body, replace=True)
    events.document_changed(runtime.db, collection, "document.updated", doc)
    return document_view(doc)


@router.patch("/{document_id}", response_model=DocumentResponse)
def patch_document(
    collection_identifier: str,
    document_id: str,
    scope: ScopeDep,
    session: ReadDbDep,
    runtime: RuntimeDep,
    body: Annotated[dict[str, Any], Body()],
) -> dict[str, Any]:
    collection = _collection(session, scope, collection_identifier)
    doc = service.update_document(runtime.index, collection, document_id, body, replace=False)
    events.document_changed(runtime.db, collection, "document.updated", doc)
    return document_view(doc)


@router.delete("/{document_id}", response_model=GenericDeleteResponse)
def delete_document(
    collection_identifier: str, document_id: str, scope: ScopeDep, session: ReadDbDep, runtime: RuntimeDep
) -> GenericDeleteResponse:
    collection = _collection(session, scope, collection_identifier)
    doc = service.delete_document(runtime.index, runtime.blobs, collection, document_id)
    events.document_deleted(runtime.db, collection, doc)
    return GenericDeleteResponse(message=f"Document {document_id} deleted", success=True)
