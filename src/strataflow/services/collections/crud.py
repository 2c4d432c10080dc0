"""Collections: create (validating the whole pipeline step up front), list, patch, delete, features."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from strataflow.blobs import BlobStore
from strataflow.clock import utcnow
from strataflow.errors import AlreadyExistsError, BadRequestError, ConflictError
from strataflow.extractors.registry import (
    get_extractor,
    parse_parameters,
    stored_parameters,
    vector_index_definition,
)
from strataflow.ids import looks_like, new_id
from strataflow.index.store import DocumentIndex
from strataflow.schemas.collections import CreateCollectionRequest, ListCollectionsRequest, PatchCollectionRequest
from strataflow.schemas.validation import validate_as
from strataflow.services.buckets.schema import normalize_schema
from strataflow.services.collections import schema
from strataflow.services.collections.sources import ResolvedSource, dependants, get_collection, resolve_source
from strataflow.services.events.outbox import emit
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.statuses import Status
from strataflow.store.filters import FieldMap
from strataflow.store.pagination import ListQuery, Page, PageRequest, list_page
from strataflow.store.tables import Batch, BatchTier, Collection, CollectionSource

log = logging.getLogger("strataflow.collections")

COLLECTION_FIELDS = FieldMap(
    columns={
        "collection_id": Collection.collection_id,
        "collection_name": Collection.collection_name,
        "description": Collection.description,
        "enabled": Collection.enabled,
        "created_at": Collection.created_at,
        "updated_at": Collection.updated_at,
    },
    json_columns={
        "metadata": Collection.metadata_,
        "source": Collection.source,
        "feature_extractor": Collection.feature_extractor,
    },
)
IMMUTABLE_FIELDS = (
    "source",
    "feature_extractor",
    "feature_extractors",
    "input_schema",
    "output_schema",
    "collection_id",
    "vector_indexes",
)


def _check_name_free(session: Session, scope: NamespaceScope, name: str, except_id: str | None = None) -> None:
    if looks_like("collection", name):
        raise BadRequestError("Collection names may not start with 'col_' (that prefix marks ids)")
    existing = session.scalar(
        select(Collection.collection_id).where(
            Collection.namespace_id == scope.namespace_id, Collection.collection_name == name
        )
    )
    if existing is not None and existing != except_id:
        raise AlreadyExistsError(f"Collection '{name}' already exists in this namespace", {"collection_name": name})


def _input_schema(source: ResolvedSource, requested: dict[str, Any] | None) -> dict[str, Any]:
    """The source's schema, or the caller's narrower one, which must agree with the source."""
    if requested is None:
        return source.input_schema
    narrowed = normalize_schema(requested)
    offered = source.input_schema.get("properties", {})
    for name, field in narrowed["properties"].items():
        if name not in offered or offered[name].get("type") != field["type"]:
            raise BadRequestError(
                f"input_schema field '{name}' does not match the source schema",
                {"field": name, "source_fields": sorted(offered)},
            )
    return narrowed


def _vector_indexes(extractor: Any, params: Any, source: ResolvedSource) -> list[dict[str, Any]]:
    """The extractor's own vector indexes, or, for one that copies its source, the source's."""
    if not extractor.copies_source:
        return [vector_index_definition(extractor, spec) for spec in extractor.vector_indexes(params)]
    inherited: dict[str, dict[str, Any]] = {}
    for upstream in source.upstream:
        for definition in upstream.vector_indexes:
            storage = definition["index"]["name"]
            known = inherited.get(storage)
            if known is not None and known["index"]["dimensions"] != definition["index"]["dimensions"]:
                raise BadRequestError(f"Source collections disagree on vector '{storage}'")
            inherited[storage] = definition
    return list(inherited.values())


def _vector_fields(indexes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        d["index"]["name"]: {
            "type": "array",
            "items": {"type": "float"},
            "dimensions": d["index"]["dimensions"],
            "description": d["description"],
        }
        for d in indexes
    }


def build_collection(
    session: Session, scope: NamespaceScope, request: CreateCollectionRequest
) -> tuple[Collection, ResolvedSource]:
    """Validate a create request completely and return the (unsaved) row. Raises on any problem."""
    _check_name_free(session, scope, request.collection_name)
    source = resolve_source(session, scope, request.source, request.collection_name)
    config = request.feature_extractor
    extractor = get_extractor(config.feature_extractor_name, config.version)
    params = extractor.complete_parameters(parse_parameters(extractor, config.parameters), config.params)
    input_schema = _input_schema(source, request.input_schema)
    indexes = _vector_indexes(extractor, params, source)
    vector_fields = _vector_fields(indexes)
    schema.resolve_input_mappings(
        extractor,
        config.input_mappings,
        input_schema,
        from_bucket=source.from_bucket,
        vector_names=schema.vector_fields_of(input_schema),
    )
    produced = set() if extractor.copies_source else {f.name for f in extractor.output_fields(params)}
    passthrough = schema.resolve_passthrough(
        config.field_passthrough, input_schema, produced | set(vector_fields), from_bucket=source.from_bucket
    )
    output = schema.output_schema(
        extractor,
        params,
        input_schema,
        passthrough,
        config.include_all_source_fields,
        source.from_bucket,
        vector_fields,
    )
    feature_extractor = {
        "feature_extractor_name": extractor.name,
        "version": extractor.version,
        "feature_extractor_id": extractor.extractor_id,
        "params": config.params,
        "parameters": stored_parameters(extractor, params),
        "input_mappings": config.input_mappings
        if isinstance(config.input_mappings, dict)
        else [m.model_dump(exclude_none=True) for m in config.input_mappings],
        "field_passthrough": [p.model_dump() for p in config.field_passthrough],
        "include_all_source_fields": config.include_all_source_fields,
    }
    lineage_entry = {"source_config": source.config, "feature_extractor": feature_extractor, "output_schema": output}
    upstream_lineage = list(source.upstream[0].source_lineage) if source.upstream else []
    return Collection(
        collection_id=new_id("collection"),
        namespace_id=scope.namespace_id,
        collection_name=request.collection_name,
        description=request.description,
        source=source.config,
        input_schema=input_schema,
        output_schema=output,
        feature_extractor=feature_extractor,
        vector_indexes=indexes,
        source_lineage=[*upstream_lineage, lineage_entry],
        enabled=request.enabled,
        metadata_=request.metadata or {},
        taxonomy_applications=request.taxonomy_applications,
        cluster_applications=request.cluster_applications,
        alert_applications=request.alert_applications,
    ), source


def create_collection(
    session: Session,
    index: DocumentIndex,
    scope: NamespaceScope,
    request: CreateCollectionRequest,
    check: Callable[[Collection], None] | None = None,
) -> Collection:
    """Validate, create the documents table, then save. A failure leaves neither behind.

    `check` validates what other aggregates own (the taxonomy applications) on the unsaved row.
    """
    row, source = build_collection(session, scope, request)
    if check is not None:
        check(row)
    row.created_at = row.updated_at = utcnow()
    index.create_table(row.collection_id, vector_table_columns(row))
    try:
        session.add(row)
        session.add_all(
            CollectionSource(collection_id=row.collection_id, source_type=kind, source_id=source_id)
            for kind, source_id in source.edges
        )
        session.flush()
        _emit(session, scope, "collection.created", row)
        session.commit()
    except IntegrityError:  # a concurrent create took the name between our check and the commit
        session.rollback()
        index.drop_table(row.collection_id)
        raise AlreadyExistsError(
            f"Collection '{row.collection_name}' already exists in this namespace",
            {"collection_name": row.collection_name},
        ) from None
    except BaseException:
        session.rollback()
        index.drop_table(row.collection_id)
        raise
    return row


def vector_table_columns(collection: Collection) -> dict[str, int]:
    return {d["index"]["name"]: d["index"]["dimensions"] for d in collection.vector_indexes}


def list_collections(
    session: Session, scope: NamespaceScope, request: ListCollectionsRequest, page: PageRequest
) -> tuple[Page, int]:
    return list_page(
        session,
        select(Collection).where(Collection.namespace_id == scope.namespace_id),
        COLLECTION_FIELDS,
        ListQuery.of(request),
        search_columns=(Collection.collection_name, Collection.collection_id, Collection.description),
        tie_break=(Collection.created_at.desc(), Collection.collection_id),
        page=page,
    )


def patch_collection(
    session: Session,
    scope: NamespaceScope,
    identifier: str,
    body: dict[str, Any],
    check: Callable[[Collection], None] | None = None,
) -> Collection:
    """Only descriptive fields change; source and extractor are fixed at creation."""
    fixed = sorted(k for k in body if k in IMMUTABLE_FIELDS)
    if fixed:
        raise BadRequestError(
            f"Cannot change {', '.join(fixed)} of a collection; create a new collection instead",
            {"immutable_fields": fixed},
        )
    request = validate_as(PatchCollectionRequest, body)
    row = get_collection(session, scope, identifier)
    changes = request.model_dump(exclude_unset=True)
    if changes.get("collection_name") is not None:
        _check_name_free(session, scope, changes["collection_name"], row.collection_id)
        row.collection_name = changes["collection_name"]
    for name in ("description", "taxonomy_applications", "cluster_applications", "alert_applications"):
        if name in changes:
            setattr(row, name, changes[name])
    if changes.get("enabled") is not None:
        row.enabled = changes["enabled"]
    if changes.get("metadata") is not None:
        row.metadata_ = changes["metadata"]
    if check is not None and ("taxonomy_applications" in changes or "cluster_applications" in changes):
        try:
            check(row)
        except BaseException:
            session.rollback()  # nothing of a refused patch stays
            raise
    row.updated_at = utcnow()
    _emit(session, scope, "collection.updated", row)
    session.commit()
    return row


def delete_collection(
    session: Session, index: DocumentIndex, blobs: BlobStore, scope: NamespaceScope, identifier: str
) -> dict[str, Any]:
    """Refused while another collection reads from it; otherwise removes it and all its documents."""
    row = get_collection(session, scope, identifier)
    readers = dependants(session, row.collection_id)
    if readers:
        raise ConflictError(
            f"Collection '{row.collection_name}' is the source of {len(readers)} other collection(s); "
            "delete those first",
            {"dependent_collection_ids": sorted(readers)},
        )
    writers = sorted(
        c.collection_id
        for c in session.scalars(select(Collection).where(Collection.namespace_id == row.namespace_id))
        if c.collection_id != row.collection_id
        and any(
            isinstance(a, dict) and a.get("target_collection_id") == row.collection_id
            for a in c.taxonomy_applications or []
        )
    )
    if writers:
        raise ConflictError(
            f"Collection '{row.collection_name}' is the target_collection_id of taxonomy applications of "
            f"{len(writers)} collection(s); remove those applications first",
            {"collection_ids": writers},
        )
    running = batches_using(session, row.collection_id)
    if running:
        # Refused rather than pulled from under a running tier: the tier would fail half-way and
        # its batch with it, though its other collections were fine. Cancel or let them finish.
        raise ConflictError(
            f"Collection '{row.collection_name}' is being processed by {len(running)} batch(es) that have not "
            "finished; cancel them or wait for them to finish, then delete it",
            {"batch_ids": running},
        )
    documents = index.count(row.collection_id)  # for the event, committed with the delete
    session.execute(delete(CollectionSource).where(CollectionSource.collection_id == row.collection_id))
    _emit(session, scope, "collection.deleted", row, documents_deleted=documents)
    session.delete(row)
    session.commit()
    # After the commit: a failure here leaves only an unreachable table or files, never a half collection.
    index.drop_table(row.collection_id)
    blobs.delete_prefix(document_blob_prefix(row))
    return {"collection_id": row.collection_id, "documents_deleted": documents}


def _emit(session: Session, scope: NamespaceScope, event_type: str, row: Collection, **extra: Any) -> None:
    payload = {
        "collection_id": row.collection_id,
        "collection_name": row.collection_name,
        "namespace_id": row.namespace_id,
        "enabled": row.enabled,
        **extra,
    }
    emit(
        session,
        event_type,
        org_id=scope.org_id,
        namespace_id=scope.namespace_id,
        resource_id=row.collection_id,
        payload=payload,
    )


def batches_using(session: Session, collection_id: str) -> list[str]:
    """Unfinished batches with a tier that runs `collection_id`."""
    unfinished = [s.value for s in (Status.PENDING, Status.IN_PROGRESS, Status.PROCESSING)]
    tiers = session.execute(
        select(BatchTier.batch_id, BatchTier.collection_ids)
        .join(Batch, Batch.batch_id == BatchTier.batch_id)
        .where(Batch.status.in_(unfinished))
    )
    return sorted({batch_id for batch_id, collection_ids in tiers if collection_id in (collection_ids or [])})


def document_blob_prefix(collection: Collection) -> str:
    return f"{collection.namespace_id}/collections/{collection.collection_id}/"


def describe_features(collection: Collection) -> list[dict[str, Any]]:
    name, version = (collection.feature_extractor["feature_extractor_name"], collection.feature_extractor["version"])
    features = []
    for position, definition in enumerate(collection.vector_indexes):
        uri = definition["feature_uri"]
        features.append(
            {
                "feature_address": uri,
                "feature_uri": uri,
                "feature_extractor_name": name,
                "version": version,
                "vector_index": definition["index"],
                "primary": position == 0,
            }
        )
    return features
