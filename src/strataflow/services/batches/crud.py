"""Batches: create, add objects, read, list, patch, delete. Submission lives in batch_submit."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from strataflow.errors import BadRequestError, ConflictError, not_found
from strataflow.ids import new_id
from strataflow.index.store import DocumentIndex
from strataflow.schemas.batches import CreateBatchRequest, ListBatchesRequest
from strataflow.services.batches import across
from strataflow.services.batches.members import add_members, check_objects_exist, unknown_objects_filter
from strataflow.services.batches.selection import apply_dedup, filtered_object_ids, planned_tiers
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.statuses import TERMINAL, Status
from strataflow.store.tables import Batch, BatchTier, Bucket, DocumentFailure
from strataflow.transitions import create


def get_batch(
    session: Session, scope: NamespaceScope, bucket: Bucket, batch_id: str, *, for_update: bool = False
) -> Batch:
    query = select(Batch).where(
        Batch.batch_id == batch_id, Batch.bucket_id == bucket.bucket_id, Batch.namespace_id == scope.namespace_id
    )
    if for_update and session.get_bind().dialect.name != "sqlite":
        query = query.with_for_update()
    row = session.scalar(query)
    if row is None:
        raise not_found("Batch", batch_id)
    return row


def _validated(session: Session, bucket: Bucket, object_ids: list[str], skip_validation: bool) -> list[str]:
    if skip_validation:
        return unknown_objects_filter(object_ids)
    check_objects_exist(session, bucket.bucket_id, object_ids)
    return object_ids


def _chosen_objects(
    session: Session, scope: NamespaceScope, bucket: Bucket, request: CreateBatchRequest, skip_validation: bool
) -> list[str]:
    if request.filters is not None:
        return filtered_object_ids(session, scope, bucket, request.filters, request.limit)
    assert request.object_ids is not None  # the request holds exactly one of the two
    return _validated(session, bucket, request.object_ids, skip_validation)


def create_batch(
    session: Session,
    scope: NamespaceScope,
    bucket: Bucket,
    request: CreateBatchRequest,
    index: DocumentIndex,
    skip_validation: bool = False,
) -> Batch:
    """A DRAFT batch. Every check (objects, scope, dedup) runs before anything is written."""
    object_ids = _chosen_objects(session, scope, bucket, request, skip_validation)
    scoped = list(dict.fromkeys(request.collection_ids)) if request.collection_ids is not None else None
    tiers = planned_tiers(session, scope, bucket, scoped)
    dedup = apply_dedup(index, request.dedup_strategy, tiers[0] if tiers else [], object_ids)
    if not dedup.object_ids:
        raise BadRequestError(
            "Every object already has documents in the batch's collections (dedup_strategy 'skip'); "
            "a batch needs at least one object to process",
            {"dedup_audit": dedup.audit},
        )
    batch = Batch(
        batch_id=new_id("batch"),
        org_id=scope.org_id,
        namespace_id=scope.namespace_id,
        bucket_id=bucket.bucket_id,
        metadata_=request.metadata,
        batch_name=request.batch_name,
        collection_scope=sorted(scoped) if scoped is not None else None,
        # A scoped draft shows the collections it will run; an unscoped one learns them at submit.
        collection_ids=[cid for tier in tiers for cid in tier] if scoped is not None else None,
        dedup_strategy=request.dedup_strategy,
        internal_metadata={"dedup_audit": dedup.audit} if dedup.audit else {},
    )
    create(session, batch, Status.DRAFT, "created")
    session.flush()
    batch.object_count = add_members(session, batch.batch_id, dedup.object_ids)
    session.commit()
    return batch


def add_objects(
    session: Session,
    scope: NamespaceScope,
    bucket: Bucket,
    batch_id: str,
    object_ids: list[str],
    skip_validation: bool = False,
) -> Batch:
    batch = get_batch(session, scope, bucket, batch_id, for_update=True)
    if batch.status != Status.DRAFT:
        raise BadRequestError(
            f"Objects can only be added to a DRAFT batch; this one is {batch.status}",
            {"batch_id": batch_id, "status": batch.status},
        )
    object_ids = _validated(session, bucket, object_ids, skip_validation)
    batch.object_count = add_members(session, batch.batch_id, object_ids)
    session.commit()
    return batch


def _check_namespace(scope: NamespaceScope, requested: str | None) -> None:
    """A bucket's batches never leave the caller's namespace: `namespace_id` naming another one is a 400."""
    if requested is not None and requested not in (scope.namespace_id, scope.namespace_name):
        raise BadRequestError(
            "namespace_id in the body names another namespace than the X-Namespace header",
            {"namespace_id": requested, "x_namespace": scope.namespace_name},
        )


def list_batches(
    session: Session, scope: NamespaceScope, bucket: Bucket, request: ListBatchesRequest
) -> tuple[list[Batch], int, dict[str, Any]]:
    _check_namespace(scope, request.namespace_id)
    base = select(Batch).where(Batch.bucket_id == bucket.bucket_id, Batch.namespace_id == scope.namespace_id)
    return across.paged(session, across.filtered(base, request), request)


def patch_batch(
    session: Session, scope: NamespaceScope, bucket: Bucket, batch_id: str, metadata: dict[str, object] | None
) -> Batch:
    batch = get_batch(session, scope, bucket, batch_id)
    if metadata is not None:
        batch.metadata_ = metadata
    session.commit()
    return batch


def delete_batch(session: Session, scope: NamespaceScope, bucket: Bucket, batch_id: str) -> None:
    """Remove the batch record. A batch that is still running must be canceled first."""
    batch = get_batch(session, scope, bucket, batch_id, for_update=True)
    if batch.status not in (Status.DRAFT, *(s.value for s in TERMINAL)):
        raise ConflictError(
            f"Batch {batch_id} is {batch.status}; cancel it before deleting it",
            {"batch_id": batch_id, "status": batch.status},
        )
    session.execute(delete(DocumentFailure).where(DocumentFailure.batch_id == batch_id))
    session.execute(delete(BatchTier).where(BatchTier.batch_id == batch_id))
    session.delete(batch)
    session.commit()
