"""Documents of a collection."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from sqlalchemy.orm import Session

from strataflow.api.deps import PageDep, ReadDbDep, RuntimeDep, ScopeDep, paged
from strataflow.blobs import BlobStore
from strataflow.errors import ValidationError
from strataflow.index.records import StoredDocument
from strataflow.runtime import Runtime
from strataflow.schemas.common import ERROR_RESPONSES, GenericDeleteResponse
from strataflow.schemas.documents import (
    BatchDeleteDocumentsRequest,
    BatchDeleteDocumentsResponse,
    BatchUpdateDocumentsRequest,
    BatchUpdateDocumentsResponse,
    BulkUpdateDocumentsRequest,
    BulkUpdateDocumentsResponse,
    DistinctValuesRequest,
    DistinctValuesResponse,
    DocumentAggregationRequest,
    DocumentAggregationResponse,
    DocumentCountResponse,
    DocumentCreateRequest,
    DocumentDiagnosticsResponse,
    DocumentResponse,
    ListDocumentsRequest,
    ListDocumentsResponse,
    SceneDownloadResponse,
)
from strataflow.schemas.validation import validate_as
from strataflow.services.collections.sources import get_collection
from strataflow.services.documents import aggregation, diagnostics, events, lineage, media, queries, schema_check
from strataflow.services.documents import crud as service
from strataflow.services.documents.expansion import Expander, expand_names
from strataflow.services.documents.model import document_view
from strataflow.services.documents.vector_choice import vector_choice
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.pagination import PageRequest
from strataflow.store.tables import Collection

router = APIRouter(
    prefix="/v1/collections/{collection_identifier}/documents", tags=["Collection Documents"], responses=ERROR_RESPONSES
)


def _collection(session: Any, scope: Any, identifier: str) -> Collection:
    return get_collection(session, scope, identifier)


def list_page(query: PageRequest, body: ListDocumentsRequest) -> PageRequest:
    """Body values win over query parameters (the SDK puts paging, a cursor and include_total in the body)."""
    return dataclasses.replace(
        paged(query, body),
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
    # Either place (body or query) turns vectors on.
    vectors = vector_choice(collection, bool(request.return_vectors) or return_vectors, request.return_vector_names)
    presign = request.return_url or request.return_presigned_urls or return_presigned_urls
    blobs = runtime.blobs if presign else None
    result = queries.list_documents(runtime.index, collection, request, list_page(page, request), vectors.load)

    expander = _expander(session, runtime, scope, collection, request.expand, blobs)

    def views(docs: list[StoredDocument]) -> list[dict[str, Any]]:
        shown = [document_view(d, vectors=vectors, select=request.select, blobs=blobs) for d in docs]
        return _with_expanded(shown, docs, expander)

    if result.groups is not None:
        groups = [{**g, "documents": views(g["documents"])} for g in result.groups]
        return {
            "groups": groups,
            "group_by_field": request.group_by,
            "pagination": result.pagination,
            "total_documents": result.total,
            "stats": {
                "total_documents": result.total,
                "avg_blobs_per_document": 0.0,
                "total_groups": len(groups),
                "avg_documents_per_group": sum(g["count"] for g in groups) / len(groups) if groups else 0.0,
            },
        }
    return flat_listing(result.documents, views(result.documents), result.pagination, result.total)


def flat_listing(
    documents: list[StoredDocument], results: list[dict[str, Any]], pagination: dict[str, Any], total: int | None
) -> dict[str, Any]:
    """A ListDocumentsResponse of documents (shown as `results`) without groups; also the namespace-wide list's."""
    blob_count = sum(len(d.internal.get("document_blobs") or []) for d in documents)
    return {
        "results": results,
        "pagination": pagination,
        "total_documents": total,
        "stats": {
            "total_documents": total,  # counted only on include_total, never the page size (as the SDK documents)
            "avg_blobs_per_document": blob_count / len(results) if results else 0.0,
        },
    }


def _expander(
    session: Session,
    runtime: Runtime,
    scope: NamespaceScope,
    collection: Collection,
    expand: list[str] | str | None,
    blobs: BlobStore | None,
) -> Expander | None:
    names = expand_names(expand)
    return (
        Expander(session, runtime.index, scope, {collection.collection_id: collection}, names, blobs) if names else None
    )


def _with_expanded(
    shown: list[dict[str, Any]], docs: list[StoredDocument], expander: Expander | None
) -> list[dict[str, Any]]:
    if expander is not None:
        for view, expanded in zip(shown, expander.expanded(docs), strict=True):
            view["_expanded"] = expanded
    return shown


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
    events.documents_batch(
        runtime.db, collection, "documents.deleted.batch", gone, filters=request.filters, reason=request.reason
    )
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
    return aggregation.aggregate_documents(runtime.index, collection, request)


@router.get("/count", response_model=DocumentCountResponse)
def count_documents(
    collection_identifier: str, scope: ScopeDep, session: ReadDbDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Declared before `/{document_id}` so 'count' is never taken for a document id."""
    collection = _collection(session, scope, collection_identifier)
    return {"collection_id": collection.collection_id, "count": runtime.index.count(collection.collection_id)}


@router.post("/distinct", response_model=DistinctValuesResponse)
def distinct_values(
    collection_identifier: str,
    request: DistinctValuesRequest,
    scope: ScopeDep,
    session: ReadDbDep,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    collection = _collection(session, scope, collection_identifier)
    return queries.distinct_values(runtime.index, collection, request)


@router.post("/schema/validate")
def validate_document_schema(
    collection_identifier: str,
    scope: ScopeDep,
    session: ReadDbDep,
    body: Annotated[dict[str, Any], Body()],
) -> dict[str, Any]:
    """A dry run: nothing is written."""
    return schema_check.validate_document(_collection(session, scope, collection_identifier), body)


@router.get("/{document_id}/ancestors", response_model=list[DocumentResponse])
def document_ancestors(
    collection_identifier: str, document_id: str, scope: ScopeDep, session: ReadDbDep, runtime: RuntimeDep
) -> list[dict[str, Any]]:
    collection = _collection(session, scope, collection_identifier)
    return [
        document_view(d) for d in lineage.document_ancestors(session, runtime.index, scope, collection, document_id)
    ]


@router.get("/{document_id}/descendants", response_model=list[DocumentResponse])
def document_descendants(
    collection_identifier: str,
    document_id: str,
    scope: ScopeDep,
    session: ReadDbDep,
    runtime: RuntimeDep,
    depth: Annotated[int, Query(ge=1, le=lineage.MAX_DESCENDANT_DEPTH)] = 1,
) -> list[dict[str, Any]]:
    """Direct children by default (what the SDK documents); `depth` walks further down."""
    collection = _collection(session, scope, collection_identifier)
    found = lineage.document_descendants(session, runtime.index, scope, collection, document_id, depth)
    return [document_view(d) for d in found]


@router.get("/{document_id}/download", response_model=SceneDownloadResponse)
def download_document_media(
    collection_identifier: str, document_id: str, scope: ScopeDep, session: ReadDbDep, runtime: RuntimeDep
) -> dict[str, Any]:
    collection = _collection(session, scope, collection_identifier)
    return media.document_download(session, runtime.index, runtime.blobs, scope, collection, document_id)


@router.get("/{document_id}/diagnostics", response_model=DocumentDiagnosticsResponse)
def document_diagnostics(
    collection_identifier: str, document_id: str, scope: ScopeDep, session: ReadDbDep, runtime: RuntimeDep
) -> dict[str, Any]:
    collection = _collection(session, scope, collection_identifier)
    return diagnostics.document_diagnostics(session, runtime.index, scope, collection, document_id)


@router.get("/{document_id}", response_model=DocumentResponse)
def get_document(
    collection_identifier: str,
    document_id: str,
    scope: ScopeDep,
    session: ReadDbDep,
    runtime: RuntimeDep,
    return_presigned_urls: bool = False,
    return_vectors: bool = False,
    return_vector_names: Annotated[str | None, Query(max_length=4096)] = None,
    expand: Annotated[str | None, Query(max_length=4096)] = None,
) -> dict[str, Any]:
    collection = _collection(session, scope, collection_identifier)
    vectors = vector_choice(collection, return_vectors, return_vector_names)
    blobs = runtime.blobs if return_presigned_urls else None
    expander = _expander(session, runtime, scope, collection, expand, blobs)
    doc = service.get_document(runtime.index, collection, document_id, vectors.load)
    [view] = _with_expanded([document_view(doc, vectors=vectors, blobs=blobs)], [doc], expander)
    return view


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
