"""Saved retrievers: create (validating stages and features up front), get, list, patch, delete."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from strataflow.clock import utcnow
from strataflow.errors import AlreadyExistsError, BadRequestError, not_found
from strataflow.ids import looks_like, new_id
from strataflow.retrieval.features import feature_targets
from strataflow.retrieval.stages import literal_feature_uris, normalise_stages
from strataflow.schemas.retrievers import (
    CreateRetrieverRequest,
    InputField,
    ListRetrieversRequest,
    PatchRetrieverRequest,
)
from strataflow.services.collections.sources import get_collection
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.filters import FieldMap
from strataflow.store.pagination import ListQuery, Page, PageRequest, list_page
from strataflow.store.tables import Collection, Retriever

RETRIEVER_FIELDS = FieldMap(
    columns={
        "retriever_id": Retriever.retriever_id,
        "retriever_name": Retriever.retriever_name,
        "description": Retriever.description,
        "version": Retriever.version,
        "created_at": Retriever.created_at,
        "updated_at": Retriever.updated_at,
    },
    json_columns={"display_config": Retriever.display_config},
)


def resolve_collections(session: Session, scope: NamespaceScope, identifiers: list[str]) -> list[Collection]:
    """Collections by id or name, each once, in the order given."""
    if not identifiers:
        raise BadRequestError("A retriever needs at least one collection (collection_identifiers)")
    found: dict[str, Collection] = {}
    for identifier in identifiers:
        collection = get_collection(session, scope, identifier)
        found.setdefault(collection.collection_id, collection)
    return list(found.values())


def input_schema_dict(schema: dict[str, InputField]) -> dict[str, dict[str, Any]]:
    return {name: field.model_dump(exclude_none=True) | {"required": field.required} for name, field in schema.items()}


def evolved_schema(current: dict[str, dict[str, Any]], wanted: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """`wanted` if it keeps every caller of `current` working: every input stays, with its type;
    none becomes required; a new input is optional. Descriptions, defaults and examples may change."""
    problems = []
    for name, field in current.items():
        if name not in wanted:
            problems.append(f"input '{name}' cannot be removed")
        elif wanted[name]["type"] != field["type"]:
            problems.append(f"input '{name}' cannot change its type ({field['type']} -> {wanted[name]['type']})")
        elif wanted[name]["required"] and not field.get("required"):
            problems.append(f"input '{name}' cannot become required")
    problems += [
        f"new input '{name}' must be optional" for name in wanted.keys() - current.keys() if wanted[name]["required"]
    ]
    if problems:
        raise BadRequestError(
            "The input schema may only change without breaking its callers: " + "; ".join(problems),
            {"problems": problems},
        )
    return wanted


def check_pipeline(collections: list[Collection], stages: list[Any]) -> list[dict[str, Any]]:
    """Normalised stages whose literal feature URIs all exist in the collections (400 otherwise)."""
    normalised = normalise_stages(stages)
    for uri in literal_feature_uris(normalised):
        feature_targets(collections, uri)
    return normalised


def _check_name_free(session: Session, scope: NamespaceScope, name: str, except_id: str | None = None) -> None:
    if looks_like("retriever", name):
        raise BadRequestError("Retriever names may not start with 'ret_' (that prefix marks ids)")
    existing = session.scalar(
        select(Retriever.retriever_id).where(
            Retriever.namespace_id == scope.namespace_id, Retriever.retriever_name == name
        )
    )
    if existing is not None and existing != except_id:
        raise AlreadyExistsError(f"Retriever '{name}' already exists in this namespace", {"retriever_name": name})


def create_retriever(session: Session, scope: NamespaceScope, request: CreateRetrieverRequest) -> Retriever:
    _check_name_free(session, scope, request.retriever_name)
    collections = resolve_collections(session, scope, request.collection_identifiers)
    stages = check_pipeline(collections, request.stages)
    now = utcnow()
    row = Retriever(
        retriever_id=new_id("retriever"),
        namespace_id=scope.namespace_id,
        retriever_name=request.retriever_name,
        description=request.description,
        collection_ids=[c.collection_id for c in collections],
        stages=stages,
        input_schema=input_schema_dict(request.input_schema),
        budget_limits=request.budget_limits.model_dump() if request.budget_limits else {},
        tags=request.tags,
        display_config=request.display_config,
        metadata_=request.metadata,
        version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    try:
        session.commit()
    except IntegrityError:  # a concurrent create took the name between the check and the commit
        session.rollback()
        raise AlreadyExistsError(
            f"Retriever '{request.retriever_name}' already exists in this namespace",
            {"retriever_name": request.retriever_name},
        ) from None
    return row


def get_retriever(session: Session, scope: NamespaceScope, identifier: str) -> Retriever:
    """By id, or by name within the namespace."""
    column = Retriever.retriever_id if looks_like("retriever", identifier) else Retriever.retriever_name
    row = session.scalar(select(Retriever).where(Retriever.namespace_id == scope.namespace_id, column == identifier))
    if row is None:
        raise not_found("Retriever", identifier)
    return row


def list_retrievers(
    session: Session, scope: NamespaceScope, request: ListRetrieversRequest, page: PageRequest
) -> tuple[Page, int]:
    return list_page(
        session,
        select(Retriever).where(Retriever.namespace_id == scope.namespace_id),
        RETRIEVER_FIELDS,
        ListQuery.of(request),
        search_columns=(Retriever.retriever_name, Retriever.retriever_id, Retriever.description),
        tie_break=(Retriever.created_at.desc(), Retriever.retriever_id),
        page=page,
    )


def patch_retriever(
    session: Session, scope: NamespaceScope, identifier: str, request: PatchRetrieverRequest
) -> Retriever:
    """Descriptive fields, and the pipeline: `stages` (replaced whole) and `collection_identifiers`
    are checked together as on create; `input_schema` may only grow (`evolved_schema`). Each
    change bumps `version`; a refused one changes nothing."""
    row = get_retriever(session, scope, identifier)
    changes = request.model_dump(exclude_unset=True)
    # Every check before any change: a refused patch leaves the retriever as it was.
    collection_ids, stages, schema = list(row.collection_ids), list(row.stages), dict(row.input_schema)
    if request.stages is not None or request.collection_identifiers is not None:
        collections = resolve_collections(session, scope, request.collection_identifiers or collection_ids)
        stages = check_pipeline(collections, request.stages if request.stages is not None else stages)
        collection_ids = [c.collection_id for c in collections]
    if request.input_schema is not None:
        schema = evolved_schema(schema, input_schema_dict(request.input_schema))
    if changes.get("retriever_name") is not None:
        _check_name_free(session, scope, changes["retriever_name"], row.retriever_id)
        row.retriever_name = changes["retriever_name"]
    row.collection_ids, row.stages, row.input_schema = collection_ids, stages, schema
    for name in ("description", "tags", "display_config"):
        if name in changes and (changes[name] is not None or name != "tags"):
            setattr(row, name, changes[name])
    if request.metadata is not None:
        row.metadata_ = request.metadata
    row.version += 1
    row.updated_at = utcnow()
    session.commit()
    return row


def delete_retriever(session: Session, scope: NamespaceScope, identifier: str) -> str:
    row = get_retriever(session, scope, identifier)
    session.delete(row)
    session.commit()
    return row.retriever_id


def retriever_view(row: Retriever) -> dict[str, Any]:
    """RetrieverConfig / RetrieverModelOutput: both collection key spellings, fusion null for the SDK."""
    return {
        "retriever_id": row.retriever_id,
        "retriever_name": row.retriever_name,
        "description": row.description,
        "collection_ids": list(row.collection_ids),
        "collection_identifiers": list(row.collection_ids),
        "stages": list(row.stages),
        "input_schema": dict(row.input_schema),
        "budget_limits": dict(row.budget_limits or {}),
        "feature_dependencies": None,
        "tags": list(row.tags or []),
        "display_config": row.display_config,
        "metadata": dict(row.metadata_ or {}),
        "version": row.version,
        "fusion": None,
        "is_published": False,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
        "created_by": None,
        "updated_by": None,
    }
