"""Submitting many batches at once: a whole bucket in chunks (bulk-submit), or every DRAFT of a bucket.

Each batch is created and submitted in a transaction of its own, so one refusal (an empty draft,
say) leaves the others submitted and is reported beside them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.blobs import BlobStore
from strataflow.engine.lifecycle.submit import submit_batch
from strataflow.engine.lifecycle.trigger import draft_batch
from strataflow.errors import BadRequestError, StrataflowError
from strataflow.ids import new_id
from strataflow.index.store import DocumentIndex, quote_ids
from strataflow.schemas.batches import BulkSubmitRequest
from strataflow.services.batches.queue import queue_positions
from strataflow.services.collections.dag import resolve_tiers
from strataflow.services.collections.sources import collection_nodes
from strataflow.services.objects.crud import OBJECT_FIELDS
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.statuses import Status
from strataflow.store.filters import compile_filters
from strataflow.store.tables import Batch, Bucket, BucketObject

_CHUNK = 500


def _tiers(session: Session, scope: NamespaceScope, bucket: Bucket, roots: list[str] | None) -> list[list[str]]:
    nodes = collection_nodes(session, scope.namespace_id)
    if roots is not None:
        known = {n.collection_id for n in nodes if n.enabled}
        unknown = sorted(set(roots) - known)
        if unknown:
            raise BadRequestError(
                "collection_ids names collections that are not enabled collections of this namespace",
                {"collection_ids": unknown},
            )
    tiers = resolve_tiers(bucket.bucket_id, nodes, roots)
    if not tiers:
        raise BadRequestError(
            f"No enabled collection processes bucket '{bucket.bucket_name}'; create a collection on it first",
            {"bucket_id": bucket.bucket_id},
        )
    return tiers


def _already_extracted(index: DocumentIndex, collection_ids: list[str], object_ids: list[str]) -> set[str]:
    """Objects that have documents in every one of these collections already."""
    done: set[str] | None = None
    for collection_id in collection_ids:
        found: set[str] = set()
        if index.has_table(collection_id):
            for start in range(0, len(object_ids), _CHUNK):
                where = f"root_object_id IN ({quote_ids(object_ids[start : start + _CHUNK])})"
                table = index.select(collection_id, where, {"root_object_id": "root_object_id"})
                found.update(str(v) for v in table.column("root_object_id").to_pylist())
        done = found if done is None else done & found
    return done or set()


def bulk_submit(
    session: Session,
    blobs: BlobStore,
    index: DocumentIndex,
    scope: NamespaceScope,
    bucket: Bucket,
    request: BulkSubmitRequest,
) -> dict[str, Any]:
    roots = request.collection_ids
    tiers = _tiers(session, scope, bucket, roots)
    clause = compile_filters(request.filters, OBJECT_FIELDS) if request.filters else None
    query = select(BucketObject.object_id).where(BucketObject.bucket_id == bucket.bucket_id)
    if clause is not None:
        query = query.where(clause)
    query = query.order_by(BucketObject.created_at, BucketObject.object_id)
    if request.max_objects is not None:
        query = query.limit(request.max_objects)
    object_ids = list(dict.fromkeys(session.scalars(query)))
    skipped = 0
    if request.dedup_strategy == "skip" and object_ids:
        done = _already_extracted(index, tiers[0], object_ids)
        skipped = len(done)
        object_ids = [o for o in object_ids if o not in done]
    if not object_ids:
        raise BadRequestError(
            "Nothing to submit: no object of the bucket matches"
            + (" (or all were processed already)" if skipped else ""),
            {"bucket_id": bucket.bucket_id, "skipped_already_extracted": skipped},
        )
    group = new_id("batch_group")
    results: list[dict[str, Any]] = []
    for start in range(0, len(object_ids), request.chunk_size):
        chunk = object_ids[start : start + request.chunk_size]
        batch = draft_batch(session, scope, bucket, chunk, {})
        batch.internal_metadata = {"batch_group_id": group, "dedup_strategy": request.dedup_strategy or "force"}
        batch_id = batch.batch_id
        try:
            task = submit_batch(session, blobs, scope, bucket, batch_id, roots=roots)
            results.append({"batch_id": batch_id, "status": Status.PENDING, "object_count": len(chunk)})
            results[-1]["task_id"] = task.task_id
        except StrataflowError as exc:
            session.rollback()
            results.append({"batch_id": batch_id, "status": "FAILED", "object_count": len(chunk), "error": exc.message})
    positions = queue_positions(session)
    for entry in results:
        entry["queue_position"] = positions.get(entry["batch_id"])
    submitted = sum(1 for r in results if "error" not in r)
    return {
        "batch_group_id": group,
        "total_objects": len(object_ids),
        "total_batches": len(results),
        "submitted": submitted,
        "failed": len(results) - submitted,
        "chunk_size": request.chunk_size,
        "skipped_already_extracted": skipped,
        "batches": results,
    }


def submit_all_drafts(session: Session, blobs: BlobStore, scope: NamespaceScope, bucket: Bucket) -> dict[str, Any]:
    query = (
        select(Batch.batch_id)
        .where(
            Batch.bucket_id == bucket.bucket_id,
            Batch.namespace_id == scope.namespace_id,
            Batch.status == Status.DRAFT,
        )
        .order_by(Batch.created_at, Batch.batch_id)
    )
    drafts = list(session.scalars(query))
    session.rollback()
    results: list[dict[str, Any]] = []
    for batch_id in drafts:
        try:
            task = submit_batch(session, blobs, scope, bucket, batch_id)
            results.append({"batch_id": batch_id, "status": Status.PENDING, "task_id": task.task_id})
        except StrataflowError as exc:
            session.rollback()
            results.append({"batch_id": batch_id, "status": Status.DRAFT, "error": exc.message})
    submitted = sum(1 for r in results if "error" not in r)
    return {
        "bucket_id": bucket.bucket_id,
        "total": len(drafts),
        "submitted": submitted,
        "failed": len(drafts) - submitted,
        "batches": results,
        "message": f"Submitted {submitted} of {len(drafts)} draft batch(es)",
    }
