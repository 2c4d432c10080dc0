"""Collections in the caller's namespace."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from sqlalchemy.orm import Session

from strataflow.api.deps import DbDep, PageDep, ReadDbDep, RuntimeDep, ScopeDep, paged
from strataflow.clock import isoformat
from strataflow.engine.lifecycle import trigger
from strataflow.index.store import DocumentIndex
from strataflow.schemas.collections import (
    CloneCollectionRequest,
    CloneCollectionResponse,
    CollectionExportRequest,
    CollectionExportResponse,
    CollectionReconciliationResponse,
    CollectionResponse,
    CreateCollectionRequest,
    DescribeCollectionFeaturesResponse,
    ListCollectionsRequest,
    ListCollectionsResponse,
    TriggerCollectionRequest,
    TriggerCollectionResponse,
)
from strataflow.schemas.common import ERROR_RESPONSES
from strataflow.services.clusters.auto import check_cluster_applications
from strataflow.services.collections import crud as service
from strataflow.services.collections.clone import clone_request
from strataflow.services.collections.reconciliation import reconcile
from strataflow.services.collections.sources import get_collection
from strataflow.services.documents.export import export_documents
from strataflow.services.taxonomies.crud import check_applications
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.tables import Collection

router = APIRouter(prefix="/v1/collections", tags=["Collections"], responses=ERROR_RESPONSES)


def _check_applications(session: Session, scope: NamespaceScope, collection: Collection) -> None:
    """What other aggregates own on a collection: the taxonomies and clusters it applies."""
    check_applications(session, scope, collection)
    check_cluster_applications(session, scope, collection)


def present(row: Collection, index: DocumentIndex) -> dict[str, Any]:
    return {
        "collection_id": row.collection_id,
        "collection_name": row.collection_name,
        "description": row.description,
        "input_schema": row.input_schema,
        "output_schema": row.output_schema,
        "feature_extractor": row.feature_extractor,
        "source": row.source,
        "source_lineage": row.source_lineage,
        "vector_indexes": row.vector_indexes,
        "payload_indexes": [],
        "enabled": row.enabled,
        "metadata": row.metadata_,
        "created_at": isoformat(row.created_at),
        "updated_at": isoformat(row.updated_at),
        "document_count": index.count(row.collection_id),
        "schema_version": 1,
        "schema_sync_enabled": False,  # the output schema is fixed at creation
        "taxonomy_applications": row.taxonomy_applications,
        "cluster_applications": row.cluster_applications,
        "alert_applications": row.alert_applications,
        "taxonomy_count": len(row.taxonomy_applications or []),
        "retriever_count": 0,
    }


@router.post("", response_model=CollectionResponse)
def create_collection(
    request: CreateCollectionRequest, scope: ScopeDep, session: DbDep, runtime: RuntimeDep
) -> dict[str, Any]:
    row = service.create_collection(
        session, runtime.index, scope, request, check=lambda new: _check_applications(session, scope, new)
    )
    return present(row, runtime.index)


@router.post("/{collection_identifier}/clone", response_model=CloneCollectionResponse)
def clone_collection(
    collection_identifier: str, request: CloneCollectionRequest, scope: ScopeDep, session: DbDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """A new collection from this one's configuration and the request's overrides; no documents are copied."""
    original, create = clone_request(session, scope, collection_identifier, request)
    source_collection_id = original.collection_id
    row = service.create_collection(
        session, runtime.index, scope, create, check=lambda new: _check_applications(session, scope, new)
    )
    return {"collection": present(row, runtime.index), "source_collection_id": source_collection_id}


@router.get("/{collection_identifier}/reconciliation", response_model=CollectionReconciliationResponse)
def reconcile_collection(
    collection_identifier: str,
    scope: ScopeDep,
    session: ReadDbDep,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    return reconcile(session, runtime.index, scope, collection_identifier, limit)


@router.post("/list", response_model=ListCollectionsResponse)
def list_collections(
    scope: ScopeDep,
    session: ReadDbDep,
    page: PageDep,
    runtime: RuntimeDep,
    request: ListCollectionsRequest | None = None,
) -> dict[str, Any]:
    request = request or ListCollectionsRequest()
    result, total = service.list_collections(session, scope, request, paged(page, request))
    results = [present(row, runtime.index) for row in result.rows]
    result.pagination["total"] = total
    documents = sum(r["document_count"] for r in results)
    return {
        "results": results,
        "pagination": result.pagination,
        "total_count": total,
        "stats": {
            "total_documents": documents,
            "avg_documents_per_collection": documents / len(results) if results else 0.0,
            "collections_with_taxonomies": sum(1 for r in results if r["taxonomy_count"]),
            "total_feature_extractors": len(results),
            "total_taxonomies": sum(r["taxonomy_count"] for r in results),
            "total_retrievers": 0,
        },
    }


@router.get("", response_model=ListCollectionsResponse)
def list_collections_get(scope: ScopeDep, session: ReadDbDep, page: PageDep, runtime: RuntimeDep) -> dict[str, Any]:
    return list_collections(scope, session, page, runtime, None)


@router.get("/{collection_identifier}", response_model=CollectionResponse)
def get_collection_route(
    collection_identifier: str, scope: ScopeDep, session: ReadDbDep, runtime: RuntimeDep
) -> dict[str, Any]:
    return present(get_collection(session, scope, collection_identifier), runtime.index)


@router.patch("/{collection_identifier}", response_model=CollectionResponse)
def patch_collection(
    collection_identifier: str,
    scope: ScopeDep,
    session: DbDep,
    runtime: RuntimeDep,
    body: Annotated[dict[str, Any], Body()],
) -> dict[str, Any]:
    row = service.patch_collection(
        session, scope, collection_identifier, body, check=lambda changed: _check_applications(session, scope, changed)
    )
    return present(row, runtime.index)


@router.delete("/{collection_identifier}")
def delete_collection(
    collection_identifier: str, scope: ScopeDep, session: DbDep, runtime: RuntimeDep
) -> dict[str, Any]:
    outcome = service.delete_collection(session, runtime.index, runtime.blobs, scope, collection_identifier)
    return {"success": True, "message": "Collection deleted with all of its documents", **outcome}


@router.get("/{collection_identifier}/features", response_model=DescribeCollectionFeaturesResponse)
def describe_features(collection_identifier: str, scope: ScopeDep, session: ReadDbDep) -> dict[str, Any]:
    return {"features": service.describe_features(get_collection(session, scope, collection_identifier))}


@router.post("/{collection_identifier}/trigger", status_code=202, response_model=TriggerCollectionResponse)
def trigger_collection(
    collection_identifier: str,
    scope: ScopeDep,
    session: DbDep,
    runtime: RuntimeDep,
    request: TriggerCollectionRequest | None = None,
) -> dict[str, Any]:
    request = request or TriggerCollectionRequest()
    answer = trigger.trigger_collection(
        session,
        runtime.blobs,
        scope,
        collection_identifier,
        request.include_buckets,
        request.source_filters,
        request.object_ids,
        index=runtime.index,
        dedup_strategy=request.dedup_strategy,
        include_collections=request.include_collections,
    )
    runtime.wake_scheduler()
    return answer


@router.post("/{collection_identifier}/export", response_model=CollectionExportResponse)
def export_collection(
    collection_identifier: str,
    scope: ScopeDep,
    runtime: RuntimeDep,
    request: CollectionExportRequest | None = None,
) -> dict[str, Any]:
    """Synchronous, as the SDK's call is: it answers with the download URL. Memory stays bounded
    (the export streams the collection in batches); time grows with the collection, so the
    collection is read in a session closed before the export starts."""
    with runtime.db.read_session() as session:
        collection = get_collection(session, scope, collection_identifier)
    return export_documents(runtime.db, runtime.index, runtime.blobs, collection, request or CollectionExportRequest())
