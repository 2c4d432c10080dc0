"""The events a batch's progress records, in the transaction that finishes its tier or itself."""

from __future__ import annotations

from sqlalchemy.orm import Session

from strataflow.clock import isoformat
from strataflow.services.alerts.ingest import mark_pending
from strataflow.services.events.outbox import emit
from strataflow.store.tables import Batch, BatchTier


def documents_written(session: Session, batch: Batch, tier: BatchTier) -> None:
    """One `collection.documents.written` per collection of a finished tier, with its counts; the
    alerts those collections apply on ingest are marked pending (evaluated by the alert sweep)."""
    for collection_id in tier.collection_ids or []:
        if tier.rows_done:
            mark_pending(session, collection_id)
        counters = (tier.counters or {}).get(collection_id) if isinstance(tier.counters, dict) else None
        emit(
            session,
            "collection.documents.written",
            org_id=batch.org_id,
            namespace_id=batch.namespace_id,
            resource_id=collection_id,
            payload={
                "collection_id": collection_id,
                "batch_id": batch.batch_id,
                "bucket_id": batch.bucket_id,
                "tier_num": tier.tier_num,
                "tier_status": tier.status.value,
                "rows_total": tier.rows_total,
                "rows_done": tier.rows_done,
                "counters": counters,
            },
        )


def batch_completed(session: Session, batch: Batch) -> None:
    """One `collection.documents.batch_completed` per collection the batch ran through."""
    for collection_id in batch.collection_ids or []:
        emit(
            session,
            "collection.documents.batch_completed",
            org_id=batch.org_id,
            namespace_id=batch.namespace_id,
            resource_id=collection_id,
            payload={
                "collection_id": collection_id,
                "batch_id": batch.batch_id,
                "bucket_id": batch.bucket_id,
                "status": batch.status.value,
                "object_count": batch.object_count,
                "error": batch.error,
                "completed_at": isoformat(batch.completed_at),
            },
        )
