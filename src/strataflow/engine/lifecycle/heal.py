"""Healing a tier: find what it should have written but did not, and redo it.

`sync_status` accounts for every input row of the tier (services/batches/audit.py): rows that
have no documents and no reason for it (`lost`) are queued again as a retry round of the tier,
with the later tiers following for their objects, exactly like a retry; documents whose source
is gone (its object deleted, its upstream document removed) are removed from the index.
`detect_stuck` and `kill_duplicates` only report: a tier here runs under one fenced claim, so
there is never a duplicate job to kill, and a stuck claim is taken over when its lease runs out.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from strataflow.blobs import BlobStore
from strataflow.clock import as_utc, isoformat, utcnow
from strataflow.engine.lifecycle import tiers as tier_ops
from strataflow.errors import BadRequestError, ConflictError
from strataflow.index.store import DocumentIndex, quote_ids
from strataflow.schemas.batches import HEAL_ACTIONS, HealTierRequest
from strataflow.services.batches.audit import CHUNK, CollectionAccount, account_tier, tier_audit
from strataflow.services.batches.crud import get_batch
from strataflow.services.buckets.documents import delete_document_files
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.statuses import Status
from strataflow.store.tables import Batch, BatchTier, Bucket, DocumentFailure

log = logging.getLogger("strataflow.heal")
S = Status
LOST_MESSAGE = "the tier completed without writing documents for this row; queued again by heal"


def heal_tier(
    session: Session,
    index: DocumentIndex,
    blobs: BlobStore,
    scope: NamespaceScope,
    bucket: Bucket,
    batch_id: str,
    tier_num: int,
    request: HealTierRequest,
) -> dict[str, Any]:
    if request.action not in HEAL_ACTIONS:
        raise BadRequestError(
            f"Unknown heal action '{request.action}'", {"action": request.action, "valid_actions": list(HEAL_ACTIONS)}
        )
    batch = get_batch(session, scope, bucket, batch_id, for_update=request.action == "sync_status")
    tier, tiers = tier_ops.submitted_tier(session, batch, tier_num)
    base = {"batch_id": batch_id, "tier_num": tier_num, "action": request.action}
    if request.action == "detect_stuck":
        return {**base, **_stuck_report(tier)}
    if request.action == "kill_duplicates":
        return {
            **base,
            "duplicates_killed": 0,
            "holder": tier.lease_owner,
            "fence_token": tier.fence_token,
            "message": "A tier runs under one fenced claim: a second holder's writes are refused, so none runs twice",
        }
    return {**base, **_sync(session, index, blobs, batch, tier, tiers, request.dry_run)}


def _stuck_report(tier: BatchTier) -> dict[str, Any]:
    now = utcnow()
    running = tier.status == S.IN_PROGRESS
    expires = as_utc(tier.lease_expires_at) if tier.lease_expires_at else None
    expired = running and expires is not None and expires < now
    stalled = (tier.counters or {}).get("stalled")
    idle_s = round((now - as_utc(tier.updated_at)).total_seconds(), 1) if tier.updated_at else None
    stuck = bool(expired or stalled)
    if not running:
        advice = f"Tier is {tier.status}, not running: nothing can be stuck"
    elif expired:
        advice = "Its holder stopped renewing the lease; the next scheduler poll takes the tier over"
    elif stalled:
        advice = "The runner saw no progress; cancel the tier and retry it, or check the extractor's logs"
    else:
        advice = "Running and renewing its lease"
    return {
        "stuck": stuck,
        "tier_status": tier.status,
        "holder": tier.lease_owner,
        "lease_expires_at": isoformat(expires),
        "lease_expired": bool(expired),
        "stalled": stalled,
        "seconds_since_update": idle_s,
        "rows_done": tier.rows_done,
        "rows_total": tier.rows_total,
        "recommendation": advice,
    }


def _remove_orphans(index: DocumentIndex, blobs: BlobStore, accounts: list[CollectionAccount]) -> int:
    """Delete documents whose source is gone, with the files their extractor made."""
    removed = 0
    for account in accounts:
        ids = account.orphaned_document_ids
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            docs = index.get_many(account.collection_id, chunk)
            removed += index.delete(account.collection_id, f"document_id IN ({quote_ids(chunk)})")
            delete_document_files(blobs, docs)
    return removed


def _queue_lost(session: Session, batch: Batch, accounts: list[CollectionAccount], round_: int) -> list[str]:
    """Record each lost row as a failure of this round (what a retry round runs); their root objects."""
    roots: set[str] = set()
    for account in accounts:
        lost = [g for g in account.gaps if g.reason == "lost"]
        if not lost:
            continue
        known = {
            f.row_id: f
            for f in session.query(DocumentFailure).filter(
                DocumentFailure.batch_id == batch.batch_id,
                DocumentFailure.tier_num == account.tier_num,
                DocumentFailure.collection_id == account.collection_id,
                DocumentFailure.row_id.in_([g.row_id for g in lost]),
            )
        }
        for gap in lost:
            row = known.get(gap.row_id)
            if row is None:
                row = DocumentFailure(
                    batch_id=batch.batch_id,
                    tier_num=gap.tier_num,
                    collection_id=gap.collection_id,
                    row_id=gap.row_id,
                    root_object_id=gap.root_object_id,
                    retry_count=0,
                )
                session.add(row)
            row.error_type, row.message, row.is_transient = "runtime", LOST_MESSAGE, True
            row.resolved, row.retry_round = False, round_
            roots.add(gap.root_object_id)
    return sorted(roots)


def _sync(
    session: Session,
    index: DocumentIndex,
    blobs: BlobStore,
    batch: Batch,
    tier: BatchTier,
    tiers: list[BatchTier],
    dry_run: bool,
) -> dict[str, Any]:
    if batch.status in tier_ops.RUNNING:
        raise ConflictError(
            f"Batch {batch.batch_id} is {batch.status}; heal a tier once the batch has stopped",
            {"batch_id": batch.batch_id, "status": batch.status},
        )
    if tier.status not in (*tier_ops.DONE, S.FAILED):
        raise ConflictError(
            f"Tier {tier.tier_num} is {tier.status}: it has not run to its end, so there is nothing to heal; retry it",
            {"tier_num": tier.tier_num, "tier_status": tier.status},
        )
    tier_ops.check_tiers_before(tier, tiers)  # before anything is removed: a refused heal changes nothing
    accounts = account_tier(session, index, batch, tier)
    found = tier_audit(tier, accounts)
    lost = sum(a.count("lost") for a in accounts)
    orphans = sum(len(a.orphaned_document_ids) for a in accounts)
    answer: dict[str, Any] = {
        "lost_rows": lost,
        "orphaned_documents": orphans,
        "audit": found,
        "dry_run": dry_run,
        "documents_removed": 0,
        "rows_requeued": 0,
        "task_id": None,
    }
    if dry_run or (not lost and not orphans):
        session.rollback()
        return {**answer, "message": "Dry run: nothing changed" if dry_run else "Nothing to heal"}
    removed = _remove_orphans(index, blobs, accounts)  # idempotent: a second heal finds none left
    answer["documents_removed"] = removed
    if not lost:
        session.rollback()
        return {**answer, "message": f"Removed {removed} document(s) whose source is gone"}
    batch.retry_round += 1
    round_ = batch.retry_round
    roots = _queue_lost(session, batch, accounts, round_)
    tier.retry_only = True
    for earlier in tiers[: tier.tier_num]:
        earlier.retry_only = False
    batch.internal_metadata = {
        **(batch.internal_metadata or {}),
        "retry": {"round": round_, "from_tier": tier.tier_num, "root_object_ids": roots, "mode": "heal"},
    }
    tier_ops.queue_later_tiers(session, tiers, tier.tier_num, round_, all_full=False)
    tier_ops.open_round(session, batch, tier, f"heal of tier {tier.tier_num} (round {round_}): {lost} lost row(s)")
    session.commit()
    log.info("tier healing", extra={"batch_id": batch.batch_id, "tier": tier.tier_num, "lost": lost})
    return {
        **answer,
        "rows_requeued": lost,
        "task_id": batch.task_id,
        "retry_round": round_,
        "message": f"Queued {lost} lost row(s) of tier {tier.tier_num} again; removed {removed} orphaned document(s)",
    }
