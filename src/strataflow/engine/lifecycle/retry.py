"""Retrying failed documents, and reading what failed (failed documents, logs)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from strataflow.clock import isoformat
from strataflow.engine.lifecycle import progress as lifecycle
from strataflow.errors import BadRequestError, ConflictError
from strataflow.schemas.batches import RetryBatchRequest
from strataflow.services.batches.crud import get_batch
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.statuses import Status, TaskType
from strataflow.store.tables import Batch, BatchTier, Bucket, DocumentFailure
from strataflow.transitions import transition

RETRYABLE = (Status.FAILED, Status.COMPLETED_WITH_ERRORS)


def _chosen_tiers(batch: Batch, tier_nums: list[int] | None) -> list[int]:
    every = list(range(batch.total_tiers))
    if not tier_nums:
        return every
    unknown = sorted(set(tier_nums) - set(every))
    if unknown:
        raise BadRequestError(
            f"Batch has no tier(s) {unknown}", {"tier_nums": unknown, "total_tiers": batch.total_tiers}
        )
    return sorted(set(tier_nums))


def retry_batch(
    session: Session, scope: NamespaceScope, bucket: Bucket, batch_id: str, request: RetryBatchRequest
) -> dict[str, Any]:
    batch = get_batch(session, scope, bucket, batch_id, for_update=True)
    if batch.status not in RETRYABLE:
        error = ConflictError if batch.status in (Status.PENDING, Status.IN_PROGRESS) else BadRequestError
        raise error(
            f"Only a FAILED or COMPLETED_WITH_ERRORS batch can be retried; this one is {batch.status}",
            {"status": batch.status},
        )
    tiers = _chosen_tiers(batch, request.tier_nums)
    failures = list(
        session.scalars(
            select(DocumentFailure).where(
                DocumentFailure.batch_id == batch_id,
                DocumentFailure.tier_num.in_(tiers),
                DocumentFailure.resolved.is_(False),
            )
        )
    )
    chosen = [
        f
        for f in failures
        if (f.is_transient or request.retry_mode == "all") and f.retry_count < request.max_retry_count
    ]
    answer: dict[str, Any] = {
        "batch_id": batch_id,
        "retried_count": len(chosen),
        "skipped_count": len(failures) - len(chosen),
        "tier_nums": tiers,
        "retry_mode": request.retry_mode,
    }
    if not chosen:
        session.rollback()
        return {
            **answer,
            "task_id": batch.task_id,
            "status": batch.status,
            "message": "Nothing to retry: no failed document matches the retry mode and retry limit",
        }
    batch.retry_round += 1
    for failure in chosen:
        failure.retry_count += 1
        failure.retry_round = batch.retry_round
    first = min(f.tier_num for f in chosen)
    roots = sorted({f.root_object_id for f in chosen if f.root_object_id})
    batch.internal_metadata = {
        **(batch.internal_metadata or {}),
        "retry": {"round": batch.retry_round, "from_tier": first, "root_object_ids": roots},
    }
    batch.error = None
    transition(
        session, batch, Status.IN_PROGRESS, f"retry round {batch.retry_round} from tier {first}", completed_at=None
    )
    task = lifecycle.open_task(
        session,
        batch,
        TaskType.BUCKETS_BATCHES_PROCESS,
        {"retry_round": batch.retry_round, "total_tiers": batch.total_tiers},
    )
    batch.task_id = task.task_id
    for tier in session.scalars(select(BatchTier).where(BatchTier.batch_id == batch_id)):
        tier.retry_only = tier.tier_num >= first
        if tier.tier_num == first:
            transition(session, tier, Status.PENDING, f"retry round {batch.retry_round}")
            lifecycle.make_runnable(session, batch, tier, tier.task_id)
    session.commit()
    return {**answer, "task_id": task.task_id, "status": batch.status}


def failed_documents(
    session: Session,
    scope: NamespaceScope,
    bucket: Bucket,
    batch_id: str,
    tier_num: int | None,
    collection_id: str | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    get_batch(session, scope, bucket, batch_id)
    query = select(DocumentFailure).where(DocumentFailure.batch_id == batch_id, DocumentFailure.resolved.is_(False))
    if tier_num is not None:
        query = query.where(DocumentFailure.tier_num == tier_num)
    if collection_id is not None:
        query = query.where(DocumentFailure.collection_id == collection_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(DocumentFailure.tier_num, DocumentFailure.failure_id).offset(offset).limit(limit)
    )
    results = [
        {
            "object_id" if f.row_id.startswith("obj_") else "document_id": f.row_id,
            "root_object_id": f.root_object_id,
            "collection_id": f.collection_id,
            "tier_num": f.tier_num,
            "error_type": f.error_type,
            "error_message": f.message,
            "retry_count": f.retry_count,
            "is_transient": f.is_transient,
            "timestamp": isoformat(f.updated_at),
        }
        for f in rows
    ]
    return {"batch_id": batch_id, "results": results, "total": total, "limit": limit, "offset": offset}


def batch_logs(
    session: Session, scope: NamespaceScope, bucket: Bucket, batch_id: str, tier_num: int | None
) -> dict[str, Any]:
    get_batch(session, scope, bucket, batch_id)
    query = select(BatchTier).where(BatchTier.batch_id == batch_id).order_by(BatchTier.tier_num)
    if tier_num is not None:
        query = query.where(BatchTier.tier_num == tier_num)
    tiers = [
        {
            "tier_num": t.tier_num,
            "status": t.status,
            "task_id": t.task_id,
            "ray_job_id": (t.counters or {}).get("ray_job_id"),
            "logs": t.logs or [],
        }
        for t in session.scalars(query)
    ]
    if tier_num is not None and not tiers:
        raise BadRequestError(f"Batch has no tier {tier_num}", {"tier_num": tier_num})
    return {"batch_id": batch_id, "tiers": tiers}
