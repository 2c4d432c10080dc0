"""The processing queue: which batches wait for a worker, which run and where, and how long the wait is.

Workers claim the waiting tier of the batch submitted first (engine/scheduler.py), across every
tenant, so a position counts every waiting tier ahead; only the caller's own batches are named.
The wait estimate is measured, not assumed: the rows per second of the tiers that finished most
recently on this deployment, over the rows ahead (the running tiers' remaining rows, and each
waiting batch's objects for each tier it still has to run), divided by the tiers that run at once.
With nothing measured yet the estimate is null and says why.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from strataflow.clock import as_utc, isoformat, utcnow
from strataflow.statuses import Status
from strataflow.store.tables import Batch, BatchTier

MEASURED_TIERS = 200  # the most recent finished tiers the rate is measured over
_ACTIVE = (Status.PENDING, Status.IN_PROGRESS)


def measured_rate(session: Session) -> dict[str, Any] | None:
    """Rows per second over the most recently finished tiers (all tenants: the workers are shared)."""
    query = (
        select(BatchTier.rows_total, BatchTier.started_at, BatchTier.completed_at)
        .where(
            BatchTier.status.in_([Status.COMPLETED, Status.COMPLETED_WITH_ERRORS]),
            BatchTier.started_at.is_not(None),
            BatchTier.completed_at.is_not(None),
            BatchTier.rows_total > 0,
        )
        .order_by(BatchTier.completed_at.desc())
        .limit(MEASURED_TIERS)
    )
    rows = seconds = 0.0
    tiers = 0
    for total, started, completed in session.execute(query):
        if started is None or completed is None:
            continue
        rows += total
        seconds += max((as_utc(completed) - as_utc(started)).total_seconds(), 0.001)
        tiers += 1
    if not tiers:
        return None
    return {"rows_per_second": round(rows / seconds, 3), "measured_tiers": tiers, "measured_rows": int(rows)}


def _waiting_rows(session: Session) -> list[tuple[Batch, BatchTier]]:
    """Every batch whose current tier waits for a worker, in the order workers take them."""
    query = (
        select(Batch, BatchTier)
        .join(BatchTier, BatchTier.batch_id == Batch.batch_id)
        .where(
            Batch.status.in_(_ACTIVE),
            BatchTier.status == Status.PENDING,
            BatchTier.tier_num == func.coalesce(Batch.current_tier, 0),
            BatchTier.task_id.is_not(None),
        )
        .order_by(Batch.submitted_at, Batch.batch_id)
    )
    return [(row[0], row[1]) for row in session.execute(query)]


def _running_rows(session: Session) -> list[tuple[Batch, BatchTier]]:
    query = (
        select(Batch, BatchTier)
        .join(BatchTier, and_(BatchTier.batch_id == Batch.batch_id, BatchTier.status == Status.IN_PROGRESS))
        .where(Batch.status.in_(_ACTIVE))
        .order_by(Batch.submitted_at, Batch.batch_id)
    )
    return [(row[0], row[1]) for row in session.execute(query)]


def _visible(batch: Batch, org_id: str, namespace_id: str | None) -> bool:
    return batch.org_id == org_id and (namespace_id is None or batch.namespace_id == namespace_id)


def _seconds_since(moment: datetime | None, now: datetime) -> float | None:
    return round((now - as_utc(moment)).total_seconds(), 1) if moment else None


def queue_status(session: Session, org_id: str, namespace_id: str | None, concurrency: int) -> dict[str, Any]:
    now = utcnow()
    rate = measured_rate(session)
    per_second = rate["rows_per_second"] if rate else None
    running, waiting = _running_rows(session), _waiting_rows(session)
    # Rows still ahead of the first waiting batch: what the running tiers have left.
    ahead = float(sum(max(t.rows_total - t.rows_done, 0) for _, t in running))
    workers = max(concurrency, 1)
    shown_running = [
        {
            "batch_id": b.batch_id,
            "bucket_id": b.bucket_id,
            "namespace_id": b.namespace_id,
            "tier_num": t.tier_num,
            "tier_label": f"tier {t.tier_num + 1} of {b.total_tiers}",
            "worker": t.lease_owner,
            "rows_done": t.rows_done,
            "rows_total": t.rows_total,
            "running_seconds": _seconds_since(t.started_at, now),
            "eta_seconds": round(max(t.rows_total - t.rows_done, 0) / per_second, 1) if per_second else None,
        }
        for b, t in running
        if _visible(b, org_id, namespace_id)
    ]
    shown_waiting = []
    for position, (batch, tier) in enumerate(waiting, start=1):
        if _visible(batch, org_id, namespace_id):
            shown_waiting.append(
                {
                    "batch_id": batch.batch_id,
                    "bucket_id": batch.bucket_id,
                    "namespace_id": batch.namespace_id,
                    "tier_num": tier.tier_num,
                    "position": position,
                    "batches_ahead": position - 1,
                    "waiting_seconds": _seconds_since(batch.submitted_at, now),
                    "estimated_wait_seconds": round(ahead / per_second / workers, 1) if per_second else None,
                }
            )
        tiers_left = max(batch.total_tiers - tier.tier_num, 1)
        ahead += float(max(tier.rows_total, batch.object_count) * tiers_left)
    return {
        "org_id": org_id,
        "namespace_id": namespace_id,
        "running": shown_running,
        "waiting": shown_waiting,
        "counts": {"running": len(shown_running), "waiting": len(shown_waiting), "waiting_all_tenants": len(waiting)},
        "throughput": rate,
        "concurrency": workers,
        "estimate_basis": (
            "rows ahead / measured rows per second / tiers run at once"
            if rate
            else "no tier has finished on this deployment yet: no measured throughput, no estimate"
        ),
        "generated_at": isoformat(now),
    }


def queue_positions(session: Session) -> dict[str, int]:
    """Each waiting batch's place in the queue (1: the next a worker takes)."""
    return {batch.batch_id: position for position, (batch, _) in enumerate(_waiting_rows(session), start=1)}


def queue_context(session: Session, batch: Batch) -> dict[str, Any] | None:
    """A waiting batch's place in the queue (the contract's `queue_context`); None unless it waits."""
    if batch.status != Status.PENDING and batch.status != Status.IN_PROGRESS:
        return None
    position = queue_positions(session).get(batch.batch_id)
    if position is None:
        return None  # running, not waiting
    waited = _seconds_since(batch.submitted_at, utcnow())
    return {
        "batches_ahead": position - 1,
        "position": position,
        "waiting_seconds": waited,
        "reason": "waiting for a worker",
    }
