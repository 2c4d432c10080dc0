"""Processing on demand: (re)run a collection, or an object as soon as it is created."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.blobs import BlobStore
from strataflow.engine.lifecycle.submit import submit_batch
from strataflow.errors import BadRequestError
from strataflow.ids import new_id
from strataflow.index.store import DocumentIndex
from strataflow.services.batches.members import add_members
from strataflow.services.batches.selection import apply_dedup
from strataflow.services.buckets.crud import get_bucket
from strataflow.services.collections.dag import resolve_tiers
from strataflow.services.collections.sources import collection_nodes, get_collection, root_bucket_ids, upstream_ids
from strataflow.services.objects.crud import OBJECT_FIELDS
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.statuses import Status
from strataflow.store.filters import compile_filters
from strataflow.store.tables import Batch, Bucket, BucketObject, Collection, Task
from strataflow.transitions import create


def draft_batch(
    session: Session, scope: NamespaceScope, bucket: Bucket, object_ids: list[str], metadata: dict[str, Any]
) -> Batch:
    batch = Batch(
        batch_id=new_id("batch"),
        org_id=scope.org_id,
        namespace_id=scope.namespace_id,
        bucket_id=bucket.bucket_id,
        metadata_=metadata,
    )
    create(session, batch, Status.DRAFT, "created for processing on demand")
    session.flush()
    batch.object_count = add_members(session, batch.batch_id, object_ids)
    return batch


def trigger_collection(
    session: Session,
    blobs: BlobStore,
    scope: NamespaceScope,
    identifier: str,
    include_buckets: list[str] | None,
    source_filters: dict[str, Any] | None,
    object_ids: list[str] | None = None,
    *,
    index: DocumentIndex,
    dedup_strategy: str | None = None,
    include_collections: list[str] | None = None,
) -> dict[str, Any]:
    """Create and submit a batch that re-runs this collection (and what depends on it), over the
    source buckets' objects: all, those `source_filters` match, or the `object_ids` named; with
    `dedup_strategy` 'skip', only those without documents in the collection yet."""
    collection = get_collection(session, scope, identifier)
    if not collection.enabled:
        raise BadRequestError(f"Collection '{collection.collection_name}' is disabled; enable it to trigger it")
    if include_collections is not None:
        _check_include_collections(session, scope, collection, include_collections)
    bucket_ids = root_bucket_ids(collection)
    if include_buckets:
        unknown = sorted(set(include_buckets) - set(bucket_ids))
        if unknown:
            raise BadRequestError(
                "include_buckets names buckets this collection does not read",
                {"buckets": unknown, "source_bucket_ids": bucket_ids},
            )
        bucket_ids = [b for b in bucket_ids if b in include_buckets]
    clause = compile_filters(_filters_of(source_filters), OBJECT_FIELDS)
    if object_ids:
        _check_objects(session, bucket_ids, object_ids)
    answers = []
    skipped = 0
    for bucket_id in bucket_ids:
        bucket = get_bucket(session, scope, bucket_id)
        query = select(BucketObject.object_id).where(BucketObject.bucket_id == bucket.bucket_id)
        if clause is not None:
            query = query.where(clause)
        if object_ids:
            query = query.where(BucketObject.object_id.in_(object_ids))
        matched = list(session.scalars(query.order_by(BucketObject.created_at)))
        dedup = apply_dedup(index, dedup_strategy, [collection.collection_id], matched)
        chosen = dedup.object_ids
        skipped += len(matched) - len(chosen)
        if not chosen:
            continue
        batch = draft_batch(session, scope, bucket, chosen, {"triggered_by": collection.collection_id})
        batch.dedup_strategy = dedup_strategy
        if dedup.audit:
            batch.internal_metadata = {**(batch.internal_metadata or {}), "dedup_audit": dedup.audit}
        task = submit_batch(session, blobs, scope, bucket, batch.batch_id, roots=[collection.collection_id])
        answers.append((batch, task, len(chosen)))
    if not answers:
        why = (
            f"every matching object ({skipped}) already has documents in it (dedup_strategy 'skip')"
            if skipped
            else "the collection's source buckets hold no matching objects"
        )
        raise BadRequestError(f"Nothing to process: {why}", {"source_bucket_ids": bucket_ids, "skipped": skipped})
    batch, task, _count = answers[0]
    return {
        "batch_id": batch.batch_id,
        "task_id": task.task_id,
        "collection_id": collection.collection_id,
        "source_bucket_ids": bucket_ids,
        "source_collection_ids": upstream_ids(collection) or None,
        "object_count": sum(a[2] for a in answers),
        "document_count": None,
        "total_tiers": batch.total_tiers,
        "batch_ids": [a[0].batch_id for a in answers],
        "message": f"Processing {sum(a[2] for a in answers)} object(s) in {len(answers)} batch(es)"
        + (f"; {skipped} already processed, skipped" if skipped else ""),
    }


def _filters_of(source_filters: dict[str, Any] | None) -> dict[str, Any] | None:
    """The filter tree: the SDK sends it bare (AND/OR/NOT), a collection's source keeps it under `filters`."""
    if not isinstance(source_filters, dict) or not source_filters:
        return None
    if "filters" in source_filters:
        inner = source_filters["filters"]
        return inner if isinstance(inner, dict) and inner else None
    return source_filters


def _check_include_collections(
    session: Session, scope: NamespaceScope, collection: Collection, include: list[str]
) -> None:
    """A trigger re-runs a collection over every source collection's documents of the chosen
    objects: naming all of them is accepted, naming fewer (or others) is refused, not ignored."""
    sources = set(upstream_ids(collection))
    if not sources:
        raise BadRequestError("include_collections applies to collections that read other collections")
    named = {get_collection(session, scope, c).collection_id for c in include}
    if named != sources:
        raise BadRequestError(
            "A trigger re-runs the collection over all of its source collections: "
            "include_collections must name every one of them, or be left out",
            {"include_collections": include, "source_collection_ids": sorted(sources)},
        )


def _check_objects(session: Session, bucket_ids: list[str], object_ids: list[str]) -> None:
    found = set(
        session.scalars(
            select(BucketObject.object_id).where(
                BucketObject.bucket_id.in_(bucket_ids), BucketObject.object_id.in_(object_ids)
            )
        )
    )
    missing = [object_id for object_id in object_ids if object_id not in found]
    if missing:
        raise BadRequestError(
            "object_ids names objects that are not in this collection's source buckets",
            {"object_ids": missing[:100], "source_bucket_ids": bucket_ids},
        )


def process_objects(
    session: Session, blobs: BlobStore, scope: NamespaceScope, bucket: Bucket, object_ids: list[str]
) -> Task | None:
    """auto_process: a batch of the new objects, submitted at once. None when no collection reads the bucket."""
    if not resolve_tiers(bucket.bucket_id, collection_nodes(session, scope.namespace_id)):
        return None
    batch = draft_batch(session, scope, bucket, object_ids, {"auto_process": True})
    return submit_batch(session, blobs, scope, bucket, batch.batch_id)


def upload_batch(session: Session, scope: NamespaceScope, bucket: Bucket, upload_id: str) -> Batch | None:
    """The batch `auto_submit_batch` made for this upload's object, if any (internal: no PATCH can hide it)."""
    query = select(Batch).where(
        Batch.bucket_id == bucket.bucket_id,
        Batch.namespace_id == scope.namespace_id,
        Batch.internal_metadata["upload_id"].as_string() == upload_id,
    )
    return session.scalar(query)


def process_upload(
    session: Session, blobs: BlobStore, scope: NamespaceScope, bucket: Bucket, upload_id: str, object_id: str
) -> tuple[str, str | None] | None:
    """auto_submit_batch: (batch id, task id) of the upload's object batch, made and submitted once; a
    repeated confirm finds the same one. None when no collection reads the bucket. The caller holds
    the upload row locked, so two confirms never both make one."""
    found = upload_batch(session, scope, bucket, upload_id)
    if found is not None:
        return found.batch_id, found.task_id
    if not resolve_tiers(bucket.bucket_id, collection_nodes(session, scope.namespace_id)):
        return None
    batch = draft_batch(session, scope, bucket, [object_id], {"auto_process": True})
    batch.internal_metadata = {**(batch.internal_metadata or {}), "upload_id": upload_id}
    task = submit_batch(session, blobs, scope, bucket, batch.batch_id)
    return batch.batch_id, task.task_id
