"""Namespaces: isolated spaces inside an organization."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from strataflow.engine.jobs import JobContext, JobOutcome
from strataflow.errors import AlreadyExistsError, BadRequestError, not_found
from strataflow.ids import looks_like, new_id
from strataflow.schemas.namespaces import (
    CreateNamespaceRequest,
    ListNamespacesRequest,
    PatchNamespaceRequest,
)
from strataflow.services.tenancy.scope import NamespaceScope, Principal
from strataflow.services.tenancy.tasks import create_task
from strataflow.statuses import Status, TaskType
from strataflow.store.db import deleted_rows
from strataflow.store.filters import FieldMap
from strataflow.store.pagination import ListQuery, Page, PageRequest, list_page
from strataflow.store.tables import Bucket, BucketObject, Collection, Namespace, Task
from strataflow.transitions import create, transition

NAMESPACE_FIELDS = FieldMap(
    columns={
        "namespace_id": Namespace.namespace_id,
        "namespace_name": Namespace.namespace_name,
        "description": Namespace.description,
        "created_at": Namespace.created_at,
        "updated_at": Namespace.updated_at,
    },
    json_columns={"infrastructure": Namespace.infrastructure},
)


def _visible(org_id: str) -> Any:
    return (Namespace.org_id == org_id) & (Namespace.status == Status.ACTIVE)


def get_namespace(session: Session, principal: Principal, identifier: str) -> Namespace:
    """By id first, then by name, within the caller's organization only."""
    row = session.scalar(select(Namespace).where(_visible(principal.org_id), Namespace.namespace_id == identifier))
    if row is None:
        row = session.scalar(
            select(Namespace).where(_visible(principal.org_id), Namespace.namespace_name == identifier)
        )
    if row is None:
        raise not_found("Namespace", identifier)
    return row


def resolve_scope(session: Session, principal: Principal, header: str | None) -> NamespaceScope:
    if not header or not header.strip():
        raise BadRequestError(
            "Missing X-Namespace header; send the namespace name or id",
            {"header": "X-Namespace"},
        )
    row = get_namespace(session, principal, header.strip())
    return NamespaceScope(org_id=row.org_id, namespace_id=row.namespace_id, namespace_name=row.namespace_name)


def _check_name_free(session: Session, org_id: str, name: str, except_id: str | None = None) -> None:
    if looks_like("namespace", name):
        raise BadRequestError("Namespace names may not start with 'ns_' (that prefix marks ids)")
    query = select(Namespace.namespace_id).where(Namespace.org_id == org_id, Namespace.namespace_name == name)
    existing = session.scalar(query)
    if existing is not None and existing != except_id:
        raise AlreadyExistsError(f"Namespace '{name}' already exists", {"namespace_name": name})


def _extractor_refs(refs: list[Any]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for ref in refs:
        entry = {
            "feature_extractor_name": ref.feature_extractor_name,
            "version": ref.version,
            "feature_extractor_id": f"{ref.feature_extractor_name}_{ref.version}",
            "params": ref.params,
        }
        seen[entry["feature_extractor_id"]] = entry
    return list(seen.values())


def create_namespace(session: Session, principal: Principal, request: CreateNamespaceRequest) -> Namespace:
    _check_name_free(session, principal.org_id, request.namespace_name)
    row = Namespace(
        namespace_id=new_id("namespace"),
        org_id=principal.org_id,
        namespace_name=request.namespace_name,
        description=request.description,
        feature_extractors=_extractor_refs(request.feature_extractors),
        payload_indexes=request.payload_indexes,
        auto_create_indexes=bool(request.auto_create_indexes),
        infrastructure=request.infrastructure,
    )
    create(session, row, Status.ACTIVE, "created")
    session.commit()
    return row


def update_namespace(
    session: Session, principal: Principal, identifier: str, request: PatchNamespaceRequest
) -> Namespace:
    row = get_namespace(session, principal, identifier)
    changes = request.model_dump(exclude_unset=True)
    if changes.get("namespace_name") is not None:
        _check_name_free(session, principal.org_id, changes["namespace_name"], row.namespace_id)
        row.namespace_name = changes["namespace_name"]
    for field in ("description", "payload_indexes", "infrastructure"):
        if field in changes:
            setattr(row, field, changes[field])
    if changes.get("auto_create_indexes") is not None:
        row.auto_create_indexes = changes["auto_create_indexes"]
    session.commit()
    return row


def list_namespaces(
    session: Session, principal: Principal, request: ListNamespacesRequest, page: PageRequest
) -> tuple[Page, int]:
    return list_page(
        session,
        select(Namespace).where(_visible(principal.org_id)),
        NAMESPACE_FIELDS,
        ListQuery.of(request),
        search_columns=(Namespace.namespace_name, Namespace.namespace_id, Namespace.description),
        tie_break=(Namespace.created_at.desc(), Namespace.namespace_id),
        page=page,
    )


def namespace_counts(session: Session, namespace_id: str) -> dict[str, int]:
    buckets = session.scalar(select(func.count()).where(Bucket.namespace_id == namespace_id)) or 0
    objects = session.scalar(select(func.count()).where(BucketObject.namespace_id == namespace_id)) or 0
    collections = session.scalar(select(func.count()).where(Collection.namespace_id == namespace_id)) or 0
    return {"bucket_count": buckets, "object_count": objects, "collection_count": collections}


def request_namespace_deletion(session: Session, principal: Principal, identifier: str) -> Task:
    """Hide the namespace at once and queue the task that removes its contents."""
    row = get_namespace(session, principal, identifier)
    transition(session, row, Status.ARCHIVED, "deletion requested")
    task = create_task(
        session,
        principal.org_id,
        TaskType.NAMESPACES_DELETE,
        namespace_id=row.namespace_id,
        inputs=[{"namespace_id": row.namespace_id, "namespace_name": row.namespace_name}],
    )
    session.commit()
    return task


def delete_namespace_job(context: JobContext, task: Task) -> JobOutcome:
    namespace_id = task.namespace_id
    assert namespace_id is not None
    removed_blobs = context.blobs.delete_prefix(f"{namespace_id}/")
    with context.db.transaction() as session:
        collection_ids = list(
            session.scalars(select(Collection.collection_id).where(Collection.namespace_id == namespace_id))
        )
        session.execute(delete(Collection).where(Collection.namespace_id == namespace_id))
        bucket_ids = list(session.scalars(select(Bucket.bucket_id).where(Bucket.namespace_id == namespace_id)))
        objects = deleted_rows(session, delete(BucketObject).where(BucketObject.namespace_id == namespace_id))
        session.execute(delete(Bucket).where(Bucket.namespace_id == namespace_id))
        session.execute(delete(Namespace).where(Namespace.namespace_id == namespace_id))
    index = context.services.get("index")
    for collection_id in collection_ids:  # after the commit: an orphaned table is unreachable, never half-live
        if index is not None:
            index.drop_table(collection_id)
    outputs = [
        {
            "namespace_id": namespace_id,
            "buckets_deleted": len(bucket_ids),
            "objects_deleted": objects,
            "collections_deleted": len(collection_ids),
            "blobs_deleted": removed_blobs,
        }
    ]
    return JobOutcome(status=Status.COMPLETED, outputs=outputs)
