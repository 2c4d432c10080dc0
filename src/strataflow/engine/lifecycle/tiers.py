"""Operations on one tier of a submitted batch: retry it, cancel it (and what follows), cancel its job.

The rules are the batch's own (engine/lifecycle/retry.py, progress.py): a retry re-runs the
tier's failed rows under the same retry cap, then the later tiers for the roots those rows
lead to; a tier that never completed this run (canceled, or failed as a whole) runs again in
full, and so does every tier after it that has not completed. Nothing here writes a status
except through `transitions`; running work stops because its fence no longer holds.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.engine.lifecycle import progress as lifecycle
from strataflow.errors import BadRequestError, ConflictError
from strataflow.schemas.common import RequestModel
from strataflow.services.batches.crud import get_batch
from strataflow.services.batches.view import tiers_of
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.statuses import Status, TaskType
from strataflow.store.tables import Batch, BatchTier, Bucket, DocumentFailure
from strataflow.transitions import transition

S = Status
RUNNING = (S.PENDING, S.IN_PROGRESS)
DONE = (S.COMPLETED, S.COMPLETED_WITH_ERRORS)


class RetryTierRequest(RequestModel):
    """The body of a tier retry. Naming a tier is asking for its failures: every kind is retried by default."""

    retry_mode: Literal["transient_only", "all"] = "all"
    max_retry_count: int = Field(default=3, ge=1, le=10)


_RETRY_KEYS = frozenset(RetryTierRequest.model_fields)


def parse_retry_request(body: dict[str, Any] | None) -> tuple[RetryTierRequest, list[str]]:
    """The request and the warnings for keys it ignores (resource overrides mean nothing to this engine)."""
    body = body or {}
    try:
        request = RetryTierRequest.model_validate(body)
    except ValidationError as exc:
        problems = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
        raise BadRequestError("Invalid tier retry request", {"errors": problems}) from None
    ignored = sorted(set(body) - _RETRY_KEYS)
    warnings = [f"ignored key '{key}': this engine sizes tier workers itself" for key in ignored]
    return request, warnings


def submitted_tier(session: Session, batch: Batch, tier_num: int) -> tuple[BatchTier, list[BatchTier]]:
    """The batch's tier `tier_num` and all its tiers; 400 when the batch never ran or has no such tier."""
    if batch.status == S.DRAFT:
        raise BadRequestError(
            f"Batch {batch.batch_id} is a DRAFT: it has no tiers until it is submitted",
            {"batch_id": batch.batch_id, "status": batch.status},
        )
    tiers = tiers_of(session, batch.batch_id)
    if not 0 <= tier_num < len(tiers):
        raise BadRequestError(
            f"Batch {batch.batch_id} has no tier {tier_num}; its tiers are 0..{len(tiers) - 1}",
            {"tier_num": tier_num, "total_tiers": len(tiers)},
        )
    return tiers[tier_num], tiers


def _tier_answer(batch: Batch, tier: BatchTier, **extra: Any) -> dict[str, Any]:
    return {
        "batch_id": batch.batch_id,
        "tier_num": tier.tier_num,
        "tier_status": tier.status,
        "batch_status": batch.status,
        "task_id": batch.task_id,
        **extra,
    }


# -- cancel ------------------------------------------------------------------------------------


def cancel_tier(
    session: Session, scope: NamespaceScope, bucket: Bucket, batch_id: str, tier_num: int, reason: str | None
) -> dict[str, Any]:
    """Cancel tier `tier_num` and every tier after it. Canceling a canceled tier again changes nothing."""
    batch = get_batch(session, scope, bucket, batch_id, for_update=True)
    tier, _tiers = submitted_tier(session, batch, tier_num)
    if tier.status == S.CANCELED:
        session.rollback()
        return _tier_answer(batch, tier, canceled_tiers=[], message=f"Tier {tier_num} was already canceled")
    if tier.status in (*DONE, S.FAILED):
        raise ConflictError(
            f"Tier {tier_num} already finished ({tier.status}); only a queued or running tier can be canceled",
            {"tier_num": tier_num, "tier_status": tier.status},
        )
    if batch.status not in RUNNING:
        raise ConflictError(
            f"Batch {batch_id} is {batch.status}; none of its tiers will run",
            {"batch_id": batch_id, "status": batch.status},
        )
    why = reason or f"tier {tier_num} canceled through the API"
    canceled = lifecycle.cancel_tiers_from(session, batch, tier_num, why)
    batch.internal_metadata = {
        **(batch.internal_metadata or {}),
        "tier_cancel": {"tier_num": tier_num, "reason": why, "canceled_tiers": canceled},
    }
    session.commit()
    return _tier_answer(
        batch,
        tier,
        canceled_tiers=canceled,
        message=f"Canceled tier(s) {canceled}; earlier tiers keep their documents",
    )


def tier_job_ids(tier: BatchTier) -> list[str]:
    """The jobs a tier ran under: the Ray job(s) it recorded, and its own task (the local engine's job)."""
    ids = [j for j in str((tier.counters or {}).get("ray_job_id") or "").split(",") if j]
    ids += [
        str(job["ray_job_id"]) for job in tier.extractor_jobs or [] if isinstance(job, dict) and job.get("ray_job_id")
    ]
    if tier.task_id:
        ids.append(tier.task_id)
    return sorted(set(ids))


def cancel_tier_job(
    session: Session,
    scope: NamespaceScope,
    bucket: Bucket,
    batch_id: str,
    tier_num: int,
    job_id: str,
    reason: str | None,
) -> dict[str, Any]:
    """Cancel the job running a tier. A tier runs as one job here, so this cancels the tier (and later ones)."""
    batch = get_batch(session, scope, bucket, batch_id)
    tier, _ = submitted_tier(session, batch, tier_num)
    known = tier_job_ids(tier)
    if job_id not in known:
        raise BadRequestError(
            f"Job '{job_id}' is not a job of tier {tier_num}",
            {"ray_job_id": job_id, "tier_num": tier_num, "tier_job_ids": known},
        )
    session.rollback()
    answer = cancel_tier(session, scope, bucket, batch_id, tier_num, reason or f"job {job_id} canceled through the API")
    return {**answer, "ray_job_id": job_id}


# -- retry -------------------------------------------------------------------------------------


def _failures(session: Session, batch_id: str, tier_num: int) -> list[DocumentFailure]:
    query = select(DocumentFailure).where(
        DocumentFailure.batch_id == batch_id,
        DocumentFailure.tier_num == tier_num,
        DocumentFailure.resolved.is_(False),
    )
    return list(session.scalars(query))


def queue_later_tiers(
    session: Session, tiers: list[BatchTier], tier_num: int, round_: int, all_full: bool
) -> list[int]:
    """Tiers after `tier_num` that never completed this run (all of them, `all_full`) go again in full;
    completed ones re-run only the retried roots. Returns the tiers queued in full."""
    full = []
    for later in tiers[tier_num + 1 :]:
        if later.status in DONE and not all_full:
            later.retry_only = True
            continue
        later.retry_only = False
        if later.source_type == "collection":
            later.manifest_key = None  # rebuilt from its sources' documents when it starts
        transition(session, later, S.PENDING, f"retry of tier {tier_num} (round {round_}) reaches it")
        full.append(later.tier_num)
    return full


def open_round(session: Session, batch: Batch, tier: BatchTier, reason: str) -> None:
    """Put the batch back to work at `tier` under a new batch task; the old tasks keep their end."""
    batch.error = None
    transition(session, batch, S.IN_PROGRESS, reason, completed_at=None)
    task = lifecycle.open_task(
        session,
        batch,
        TaskType.BUCKETS_BATCHES_PROCESS,
        {"retry_round": batch.retry_round, "total_tiers": batch.total_tiers, "from_tier": tier.tier_num},
    )
    batch.task_id = task.task_id
    transition(session, tier, S.PENDING, reason)
    lifecycle.make_runnable(session, batch, tier, tier.task_id)


def _check_retryable(batch: Batch, tier: BatchTier, tiers: list[BatchTier]) -> None:
    if batch.status in RUNNING:
        raise ConflictError(
            f"Batch {batch.batch_id} is {batch.status}; a tier can be retried once the batch has stopped",
            {"batch_id": batch.batch_id, "status": batch.status},
        )
    check_tiers_before(tier, tiers)


def check_tiers_before(tier: BatchTier, tiers: list[BatchTier]) -> None:
    """A tier reads what the tiers before it wrote: they must have completed (with or without errors)."""
    blocking = [t.tier_num for t in tiers[: tier.tier_num] if t.status not in DONE]
    if blocking:
        raise ConflictError(
            f"Tier {blocking[0]} has not completed, and tier {tier.tier_num} reads what it writes; retry tier "
            f"{blocking[0]} first",
            {"tier_num": tier.tier_num, "blocking_tiers": blocking},
        )


def retry_tier(
    session: Session, scope: NamespaceScope, bucket: Bucket, batch_id: str, tier_num: int, body: dict[str, Any] | None
) -> dict[str, Any]:
    request, warnings = parse_retry_request(body)
    batch = get_batch(session, scope, bucket, batch_id, for_update=True)
    tier, tiers = submitted_tier(session, batch, tier_num)
    _check_retryable(batch, tier, tiers)
    failures = _failures(session, batch_id, tier_num)
    # A tier that never completed (canceled, never reached, or failed as a whole with no row to blame)
    # runs again in full.
    whole = tier.status in (S.CANCELED, S.PENDING) or (tier.status == S.FAILED and not failures)
    chosen = [
        f
        for f in failures
        if (f.is_transient or request.retry_mode == "all") and f.retry_count < request.max_retry_count
    ]
    base = {"retry_mode": request.retry_mode, "warnings": warnings, "skipped_count": len(failures) - len(chosen)}
    if not whole and not chosen:
        session.rollback()
        return _tier_answer(
            batch,
            tier,
            **base,
            retried_count=0,
            mode="none",
            message="Nothing to retry: no failed row of this tier matches the retry mode and retry limit",
        )
    batch.retry_round += 1
    round_ = batch.retry_round
    if whole:
        tier.retry_only = False
        if tier.source_type == "collection":
            tier.manifest_key = None
        for failure in failures:
            failure.retry_round = round_
        roots: list[str] = []
        mode = "full"
    else:
        for failure in chosen:
            failure.retry_count += 1
            failure.retry_round = round_
        tier.retry_only = True
        roots = sorted({f.root_object_id for f in chosen if f.root_object_id})
        mode = "failed_rows"
    for earlier in tiers[:tier_num]:
        earlier.retry_only = False
    batch.internal_metadata = {
        **(batch.internal_metadata or {}),
        "retry": {"round": round_, "from_tier": tier_num, "root_object_ids": roots, "mode": mode},
    }
    full_later = queue_later_tiers(session, tiers, tier_num, round_, all_full=whole)
    open_round(session, batch, tier, f"retry of tier {tier_num} (round {round_}, {mode})")
    session.commit()
    return _tier_answer(
        batch,
        tier,
        **base,
        retried_count=len(chosen) if not whole else tier.rows_total,
        mode=mode,
        retry_round=round_,
        later_tiers_in_full=full_later,
        message=f"Tier {tier_num} queued again ({mode}); later tiers follow",
    )
