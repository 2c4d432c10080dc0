"""One tier of a batch: retry it, cancel it (and the tiers after it), cancel its job, heal it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path

from strataflow.api.deps import DbDep, RuntimeDep, ScopeDep
from strataflow.engine.lifecycle import heal as healing
from strataflow.engine.lifecycle import tiers as tier_ops
from strataflow.schemas.batches import HealTierRequest
from strataflow.schemas.common import ERROR_RESPONSES
from strataflow.services.buckets.crud import get_bucket

router = APIRouter(
    prefix="/v1/buckets/{bucket_identifier}/batches/{batch_id}/tiers/{tier_num}",
    tags=["Bucket Batches"],
    responses=ERROR_RESPONSES,
)

TierNum = Annotated[int, Path(ge=0, description="Zero-based tier number")]


@router.post("/retry")
def retry_tier(
    bucket_identifier: str,
    batch_id: str,
    tier_num: TierNum,
    scope: ScopeDep,
    session: DbDep,
    runtime: RuntimeDep,
    request: Annotated[dict[str, Any] | None, Body()] = None,
) -> dict[str, Any]:
    """Re-run the tier's failed rows (or the whole tier, when it never completed), then the later tiers."""
    bucket = get_bucket(session, scope, bucket_identifier)
    answer = tier_ops.retry_tier(session, scope, bucket, batch_id, tier_num, request)
    runtime.wake_scheduler()
    return answer


@router.post("/cancel")
def cancel_tier(
    bucket_identifier: str,
    batch_id: str,
    tier_num: TierNum,
    scope: ScopeDep,
    session: DbDep,
    reason: str | None = None,
) -> dict[str, Any]:
    """Cancel this tier and every tier after it; earlier tiers keep their documents."""
    bucket = get_bucket(session, scope, bucket_identifier)
    return tier_ops.cancel_tier(session, scope, bucket, batch_id, tier_num, reason)


@router.post("/jobs/{ray_job_id}/cancel")
def cancel_tier_job(
    bucket_identifier: str,
    batch_id: str,
    tier_num: TierNum,
    ray_job_id: str,
    scope: ScopeDep,
    session: DbDep,
    reason: str | None = None,
) -> dict[str, Any]:
    """Cancel the job that runs this tier (here a tier runs as one job: the tier and later ones stop)."""
    bucket = get_bucket(session, scope, bucket_identifier)
    return tier_ops.cancel_tier_job(session, scope, bucket, batch_id, tier_num, ray_job_id, reason)


@router.post("/heal")
def heal_tier(
    bucket_identifier: str,
    batch_id: str,
    tier_num: TierNum,
    request: HealTierRequest,
    scope: ScopeDep,
    session: DbDep,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    """Find what the tier should have written but did not, and redo it (`sync_status`); or report."""
    bucket = get_bucket(session, scope, bucket_identifier)
    answer = healing.heal_tier(session, runtime.index, runtime.blobs, scope, bucket, batch_id, tier_num, request)
    runtime.wake_scheduler()
    return answer
