"""Resubmitting a finished batch: the same batch again, as a new run with new tasks.

From the start (no `from_tier`): the old tiers are forgotten, the batch goes back to DRAFT and,
unless told not to, is submitted again at once (a fresh DAG resolution, a new batch task).
From tier k: tiers before k keep what they wrote, tier k and every later tier run again in
full under a new batch task. Either way the old run's tasks stay as they ended.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from strataflow.blobs import BlobStore
from strataflow.engine.lifecycle import progress as lifecycle
from strataflow.engine.lifecycle import tiers as tier_ops
from strataflow.engine.lifecycle.submit import submit_batch
from strataflow.errors import BadRequestError, ConflictError
from strataflow.services.batches.crud import get_batch
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.statuses import Status, TaskType
from strataflow.store.tables import Batch, BatchTier, Bucket
from strataflow.transitions import transition

S = Status


def _check_finished(batch: Batch) -> None:
    if batch.status == S.DRAFT:
        raise BadRequestError(
            f"Batch {batch.batch_id} is a DRAFT and has never run: submit it instead", {"status": batch.status}
        )
    if batch.status in tier_ops.RUNNING:
        raise ConflictError(
            f"Batch {batch.batch_id} is {batch.status}; resubmit it once it has finished (or cancel it)",
            {"status": batch.status},
        )


def resubmit_batch(
    session: Session,
    blobs: BlobStore,
    scope: NamespaceScope,
    bucket: Bucket,
    batch_id: str,
    from_tier: int | None,
    auto_submit: bool,
) -> dict[str, Any]:
    batch = get_batch(session, scope, bucket, batch_id, for_update=True)
    _check_finished(batch)
    previous = batch.task_id
    if from_tier:
        if not auto_submit:
            raise BadRequestError(
                "from_tier needs auto_submit: a batch parked as DRAFT runs every tier when it is submitted",
                {"from_tier": from_tier},
            )
        _rerun_from(session, batch, from_tier)
        session.commit()
    else:
        _back_to_draft(session, batch)
        session.commit()
        if auto_submit:
            roots = (batch.internal_metadata or {}).get("root_collection_ids")
            submit_batch(session, blobs, scope, bucket, batch_id, roots=list(roots) if roots else None)
    return {
        "batch_id": batch_id,
        "status": batch.status,
        "task_id": batch.task_id,
        "previous_task_id": previous,
        "from_tier": from_tier or 0,
        "auto_submit": auto_submit,
        "message": (
            f"Batch {batch_id} resubmitted from tier {from_tier or 0}"
            if auto_submit
            else f"Batch {batch_id} is a DRAFT again; submit it to run it"
        ),
    }


def _back_to_draft(session: Session, batch: Batch) -> None:
    session.execute(delete(BatchTier).where(BatchTier.batch_id == batch.batch_id))
    transition(session, batch, S.DRAFT, "resubmitted", submitted_at=None, completed_at=None)
    batch.task_id = None
    batch.current_tier = None
    batch.error = None
    batch.dag_tiers = None
    batch.manifest_key = None
    kept = ("root_collection_ids", "dedup_audit")  # what the batch was made with, not what a run left
    batch.internal_metadata = {k: v for k, v in (batch.internal_metadata or {}).items() if k in kept}


def _rerun_from(session: Session, batch: Batch, from_tier: int) -> None:
    tier, tiers = tier_ops.submitted_tier(session, batch, from_tier)
    tier_ops.check_tiers_before(tier, tiers)
    batch.retry_round += 1
    reason = f"resubmitted from tier {from_tier}"
    for later in tiers[from_tier:]:
        later.retry_only = False
        if later.source_type == "collection":
            later.manifest_key = None
        transition(session, later, S.PENDING, reason)
    batch.internal_metadata = {
        **(batch.internal_metadata or {}),
        "retry": {"round": batch.retry_round, "from_tier": from_tier, "root_object_ids": [], "mode": "resubmit"},
    }
    batch.error = None
    transition(session, batch, S.PENDING, reason, completed_at=None)
    task = lifecycle.open_task(
        session,
        batch,
        TaskType.BUCKETS_BATCHES_PROCESS,
        {"total_tiers": batch.total_tiers, "from_tier": from_tier, "resubmitted": True},
    )
    batch.task_id = task.task_id
    lifecycle.make_runnable(session, batch, tier, None)
