"""What is wrong with a batch, and what to do about it.

Reads the batch, its tiers, its recorded failures and its collections, and names each problem
with the action that fixes it: a stalled tier, missing blobs, a failing extractor, a mapping
that gives a collection no input, objects deleted while it ran, collections gone since submit.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.clock import as_utc, isoformat, utcnow
from strataflow.services.batches.audit import NO_INPUT
from strataflow.statuses import Status
from strataflow.store.tables import Batch, BatchTier, Collection, DocumentFailure

STALL_AFTER_S = 300.0  # a running tier without any update for this long is reported stalled
_SHOWN = 10
_MISSING_BLOB = "missing from storage"
_MISSING_OBJECT = "no longer exists"


def _problem(kind: str, detail: str, action: str, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "detail": detail, "action": action, **extra}


def _stalled(tier: BatchTier) -> dict[str, Any] | None:
    if tier.status != Status.IN_PROGRESS:
        return None
    now = utcnow()
    expired = tier.lease_expires_at is not None and as_utc(tier.lease_expires_at) < now
    idle = (now - as_utc(tier.updated_at)).total_seconds() if tier.updated_at else 0.0
    stalled = (tier.counters or {}).get("stalled")
    if not (expired or stalled or idle > STALL_AFTER_S):
        return None
    why = stalled or ("its worker stopped renewing the lease" if expired else f"no progress for {idle:.0f}s")
    return _problem(
        "stalled_tier",
        f"tier {tier.tier_num} is not moving: {why}",
        f"wait for another worker to take it over, or cancel tier {tier.tier_num} and retry it",
        tier_num=tier.tier_num,
    )


def _failure_problems(failures: list[DocumentFailure]) -> list[dict[str, Any]]:
    problems = []
    blobs = [f for f in failures if _MISSING_BLOB in f.message]
    if blobs:
        problems.append(
            _problem(
                "missing_blobs",
                f"{len(blobs)} row(s) failed because their files are missing from storage",
                "restore the files (or re-upload the objects), then retry the tier with retry_mode 'all'",
                tier_nums=sorted({f.tier_num for f in blobs}),
                object_ids=sorted({f.root_object_id or f.row_id for f in blobs})[:_SHOWN],
            )
        )
    gone = [f for f in failures if _MISSING_OBJECT in f.message]
    if gone:
        problems.append(
            _problem(
                "objects_deleted",
                f"{len(gone)} object(s) were deleted while the batch ran",
                "nothing to redo: deleted objects are not processed",
                object_ids=sorted({f.row_id for f in gone})[:_SHOWN],
            )
        )
    return problems


def _extractor_problems(
    session: Session, tiers: list[BatchTier], failures: list[DocumentFailure], no_input: Counter[str]
) -> list[dict[str, Any]]:
    problems = []
    failed_by_collection = Counter(f.collection_id for f in failures if _MISSING_BLOB not in f.message)
    for tier in tiers:
        # Each collection of a tier reads all of its input rows (rows_total counts rows × collections).
        rows = int((tier.counters or {}).get("source_documents_fetched") or 0)
        for collection_id in tier.collection_ids or []:
            collection = session.get(Collection, collection_id)
            name = (collection.feature_extractor or {}).get("feature_extractor_name") if collection else None
            failed = failed_by_collection.get(collection_id, 0)
            if rows and failed and failed * 2 >= rows:
                sample = next((f for f in failures if f.collection_id == collection_id), None)
                problems.append(
                    _problem(
                        "failing_extractor",
                        f"{name or 'the extractor'} of collection {collection_id} failed {failed} of {rows} rows"
                        + (f": {sample.error_type}: {sample.message[:200]}" if sample else ""),
                        "check the collection's extractor parameters and the failed documents' errors, then retry the "
                        "tier",
                        tier_num=tier.tier_num,
                        collection_id=collection_id,
                    )
                )
            if rows and tier.status != Status.PENDING and no_input.get(collection_id, 0) >= rows:
                mappings = (collection.feature_extractor or {}).get("input_mappings") if collection else None
                problems.append(
                    _problem(
                        "misconfigured_mapping",
                        f"no row of tier {tier.tier_num} had the input collection {collection_id} maps "
                        f"({mappings}): it wrote nothing",
                        "fix the collection's input_mappings to name a field its source rows have, then resubmit "
                        f"from tier {tier.tier_num}",
                        tier_num=tier.tier_num,
                        collection_id=collection_id,
                    )
                )
    return problems


def diagnose(session: Session, batch: Batch, tiers: list[BatchTier], queue_position: int | None) -> dict[str, Any]:
    failures = list(
        session.scalars(
            select(DocumentFailure).where(
                DocumentFailure.batch_id == batch.batch_id, DocumentFailure.resolved.is_(False)
            )
        )
    )
    no_input: Counter[str] = Counter(
        session.scalars(
            select(DocumentFailure.collection_id).where(
                DocumentFailure.batch_id == batch.batch_id, DocumentFailure.error_type == NO_INPUT
            )
        )
    )
    problems: list[dict[str, Any]] = [p for t in tiers if (p := _stalled(t))]
    problems += _failure_problems(failures)
    problems += _extractor_problems(session, tiers, failures, no_input)
    gone = [c for c in batch.collection_ids or [] if session.get(Collection, c) is None]
    if gone:
        problems.append(
            _problem(
                "collection_gone",
                f"collection(s) {gone} were deleted after the batch was submitted",
                "resubmit the batch: a new run resolves the collections as they are now",
            )
        )
    if batch.error and not problems:
        problems.append(_problem("tier_failed", batch.error, "read the tier's logs, then retry the tier"))
    if batch.status == Status.PENDING and queue_position:
        problems.append(
            _problem(
                "queued",
                f"waiting for a worker: position {queue_position} in the queue",
                "nothing: it starts when the batches ahead of it have run (GET /v1/batches/queue)",
            )
        )
    now = utcnow()
    ended = as_utc(batch.completed_at) if batch.completed_at else now
    started = as_utc(batch.submitted_at) if batch.submitted_at else None
    stalled = any(p["kind"] == "stalled_tier" for p in problems)
    return {
        "batch_id": batch.batch_id,
        "status": batch.status,
        "health": "stalled" if stalled else ("healthy" if not problems else "needs_attention"),
        "timing": {
            "created_at": isoformat(batch.created_at),
            "submitted_at": isoformat(batch.submitted_at),
            "completed_at": isoformat(batch.completed_at),
            "elapsed_seconds": round((ended - started).total_seconds(), 1) if started else None,
        },
        "progress": {
            "current_tier": batch.current_tier,
            "total_tiers": batch.total_tiers,
            "tiers": [
                {"tier_num": t.tier_num, "status": t.status, "rows_done": t.rows_done, "rows_total": t.rows_total}
                for t in tiers
            ],
        },
        "error": batch.error,
        "error_summary": dict(Counter(f.error_type for f in failures)),
        "failed_documents": [
            {
                "tier_num": f.tier_num,
                "collection_id": f.collection_id,
                "row_id": f.row_id,
                "error_type": f.error_type,
                "error_message": f.message[:500],
                "retry_count": f.retry_count,
            }
            for f in failures[:_SHOWN]
        ],
        "failed_document_count": len(failures),
        "problems": problems,
        "recommendations": [p["action"] for p in problems] or ["nothing to do"],
    }
