"""Turning an execute request (saved retriever or ad hoc) into a checked, ready-to-run Execution.

Everything a client can get wrong before the first stage runs (inputs, stage ids, feature
URIs, pagination) is checked here, so even a streamed execute answers it with a 4xx status.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from strataflow.blobs import BlobStore
from strataflow.index.store import DocumentIndex
from strataflow.retrieval.inputs import validate_inputs
from strataflow.retrieval.pipeline import Execution, ResultPage
from strataflow.retrieval.stages import with_request_filters
from strataflow.retrieval.vision_queries import VisionQueries
from strataflow.schemas.retrievers import AdhocExecuteRequest, ExecuteRetrieverRequest
from strataflow.services.collections.sources import get_collection
from strataflow.services.documents.crud import where_of
from strataflow.services.retrievers.crud import (
    check_pipeline,
    get_retriever,
    input_schema_dict,
    resolve_collections,
)
from strataflow.services.taxonomies.on_demand import hit_enrichers
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.tables import Collection


def join_targets(session: Session, scope: NamespaceScope, stages: list[dict[str, Any]]) -> dict[str, Collection]:
    """The collections document_enrich stages join from, by the identifier the stage names (404 if missing)."""
    found: dict[str, Collection] = {}
    for stage in stages:
        if stage["config"]["stage_id"] != "document_enrich":
            continue
        target = stage["config"]["parameters"].get("target_collection_id")
        if isinstance(target, str) and target and "{{" not in target and target not in found:
            found[target] = get_collection(session, scope, target)
    return found


def _execution(
    session: Session,
    scope: NamespaceScope,
    index: DocumentIndex,
    blobs: BlobStore,
    request: ExecuteRetrieverRequest,
    *,
    collections: list[Any],
    stages: list[dict[str, Any]],
    schema: dict[str, Any],
    budget: dict[str, Any],
    retriever_id: str | None,
    with_vectors: bool,
    presign: bool,
    vision: VisionQueries | None,
) -> Execution:
    inputs = validate_inputs(schema, request.inputs)
    page = ResultPage.from_request(request.pagination, request.limit, request.offset)
    if request.filters:
        for collection in collections:  # bad filters are a 400 before anything runs
            where_of(collection, request.filters)
        stages = with_request_filters(stages, request.filters)
    return Execution(
        index=index,
        collections=collections,
        stages=stages,
        inputs=inputs,
        page=page,
        retriever_id=retriever_id,
        with_vectors=with_vectors or request.return_vectors,
        blobs=blobs if presign or request.return_presigned_urls else None,
        max_time_ms=budget.get("max_time_ms"),
        taxonomies=hit_enrichers(session, index, scope, stages),
        vision=vision,
        extra_collections=join_targets(session, scope, stages),
    )


def saved_execution(
    session: Session,
    index: DocumentIndex,
    blobs: BlobStore,
    scope: NamespaceScope,
    identifier: str,
    request: ExecuteRetrieverRequest,
    *,
    with_vectors: bool = False,
    presign: bool = False,
    vision: VisionQueries | None = None,
) -> Execution:
    row = get_retriever(session, scope, identifier)
    collections = resolve_collections(session, scope, list(row.collection_ids))
    return _execution(
        session,
        scope,
        index,
        blobs,
        request,
        collections=collections,
        stages=list(row.stages),
        schema=dict(row.input_schema),
        budget=dict(row.budget_limits or {}),
        retriever_id=row.retriever_id,
        with_vectors=with_vectors,
        presign=presign,
        vision=vision,
    )


def adhoc_execution(
    session: Session,
    index: DocumentIndex,
    blobs: BlobStore,
    scope: NamespaceScope,
    request: AdhocExecuteRequest,
    *,
    with_vectors: bool = False,
    presign: bool = False,
    vision: VisionQueries | None = None,
) -> Execution:
    collections = resolve_collections(session, scope, request.collection_identifiers)
    stages = check_pipeline(collections, request.stages)
    budget = request.budget_limits.model_dump() if request.budget_limits else {}
    return _execution(
        session,
        scope,
        index,
        blobs,
        request,
        collections=collections,
        stages=stages,
        schema=input_schema_dict(request.input_schema),
        budget=budget,
        retriever_id=None,
        with_vectors=with_vectors,
        presign=presign,
        vision=vision,
    )
