"""The BatchModel wire shape, assembled from the batch, its tiers and its members."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.clock import as_utc, isoformat, utcnow
from strataflow.services.batches.members import member_ids
from strataflow.statuses import Status
from strataflow.store.tables import Batch, BatchTier

COUNTER_FIELDS = (
    "source_documents_fetched",
    "documents_after_source_filter",
    "documents_missing_input_fields",
    "documents_submitted_to_engine",
    "documents_written",
)


def _duration_ms(tier: BatchTier) -> float | None:
    if tier.started_at is None or tier.completed_at is None:
        return None
    return round((tier.completed_at - tier.started_at).total_seconds() * 1000, 1)


def tier_rate(tier: BatchTier) -> dict[str, Any]:
    """A running tier's measured rate (rows per second since it started) and the ETA it implies.

    Empty until the tier has started and done at least one row: no rate is made up.
    """
    if tier.started_at is None or not tier.rows_done or tier.status != Status.IN_PROGRESS:
        return {}
    elapsed = (utcnow() - as_utc(tier.started_at)).total_seconds()
    if elapsed <= 0:
        return {}
    rate = tier.rows_done / elapsed
    left = max(tier.rows_total - tier.rows_done, 0)
    return {"rows_per_second": round(rate, 3), "eta_seconds": round(left / rate, 1)}


def _progress(batch: Batch, tiers: list[BatchTier]) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """The batch's live progress (its running tier), the status message, the estimated completion."""
    running = next((t for t in tiers if t.status == Status.IN_PROGRESS), None)
    if running is None:
        if batch.status == Status.PENDING:
            return None, "Queued: waiting for a worker", None
        return None, None, None
    rate = tier_rate(running)
    total = running.rows_total or None
    progress = {
        "processed": running.rows_done,
        "total": total,
        "percent": round(100 * running.rows_done / total, 1) if total else None,
        "items_per_second": rate.get("rows_per_second"),
        "eta_seconds": rate.get("eta_seconds"),
        "documents_written": (running.counters or {}).get("documents_written"),
        "current_tier": running.tier_num,
        "tier_label": f"tier {running.tier_num + 1} of {batch.total_tiers}",
    }
    message = f"Processing tier {running.tier_num + 1} of {batch.total_tiers}: {running.rows_done}/{total or '?'} rows"
    eta = rate.get("eta_seconds")
    completion = isoformat(utcnow() + timedelta(seconds=eta)) if eta is not None else None
    return progress, message, completion


def tier_payload(tier: BatchTier) -> dict[str, Any]:
    counters = tier.counters or {}
    return {
        "tier_num": tier.tier_num,
        "task_id": tier.task_id,
        "status": tier.status,
        "collection_ids": tier.collection_ids,
        "extractor_jobs": tier.extractor_jobs,
        "source_type": tier.source_type,
        "source_collection_ids": tier.source_collection_ids,
        "parent_task_id": tier.parent_task_id,
        "started_at": isoformat(tier.started_at),
        "completed_at": isoformat(tier.completed_at),
        "duration_ms": _duration_ms(tier),
        "errors": tier.errors,
        "error_summary": tier.error_summary or None,
        "performance": {
            "rows_total": tier.rows_total,
            "rows_done": tier.rows_done,
            "attempts": tier.attempts,
            **tier_rate(tier),  # rows_per_second and eta_seconds while it runs, from its measured rate
            **(
                {"documents_per_second": counters["documents_per_second"]} if "documents_per_second" in counters else {}
            ),
        },
        "ray_job_id": counters.get("ray_job_id"),
        "celery_task_id": None,
        **{name: counters.get(name) for name in COUNTER_FIELDS},
    }


def tiers_of(session: Session, batch_id: str) -> list[BatchTier]:
    query = select(BatchTier).where(BatchTier.batch_id == batch_id).order_by(BatchTier.tier_num)
    return list(session.scalars(query))


def _replaced(batch: Batch, tiers: list[BatchTier]) -> int | None:
    """A 'replace' batch: the documents it wrote for the objects it replaced, over its tiers."""
    if batch.dedup_strategy != "replace":
        return None
    return sum(int((t.counters or {}).get("documents_written") or 0) for t in tiers)


def batch_payload(session: Session, batch: Batch, *, include_object_ids: bool = True) -> dict[str, Any]:
    tiers = tiers_of(session, batch.batch_id)
    summary: Counter[str] = Counter()
    for tier in tiers:
        summary.update(tier.error_summary or {})
    object_ids = member_ids(session, batch.batch_id) if include_object_ids else []
    submitted = batch.submitted_at is not None
    progress, message, completion = _progress(batch, tiers)
    return {
        "progress": progress,
        "status_message": message,
        "estimated_completion": completion,
        "batch_id": batch.batch_id,
        "bucket_id": batch.bucket_id,
        "namespace_id": batch.namespace_id,
        "batch_name": batch.batch_name,
        "status": batch.status,
        "object_ids": object_ids,
        "dedup_strategy": batch.dedup_strategy,
        "dedup_audit": (batch.internal_metadata or {}).get("dedup_audit"),
        "documents_replaced": _replaced(batch, tiers),
        "webhook_url": batch.webhook_url,
        "collection_ids": batch.collection_ids,
        "error": batch.error,
        "error_summary": dict(summary) or None,
        "type": batch.batch_type,
        "manifest_key": batch.manifest_key,
        "task_id": batch.task_id,
        "loaded_object_ids": object_ids if submitted else None,
        "internal_metadata": {
            **(batch.internal_metadata or {}),
            "object_count": batch.object_count,
            "retry_round": batch.retry_round,
        },
        "metadata": batch.metadata_,
        "tier_tasks": [tier_payload(t) for t in tiers],
        "current_tier": batch.current_tier,
        "total_tiers": max(batch.total_tiers, 1),
        "dag_tiers": batch.dag_tiers,
        "max_node_death_resubmits": 3,
        "max_deploy_resubmits": 3,
        "created_at": isoformat(batch.created_at),
        "updated_at": isoformat(batch.updated_at),
    }
