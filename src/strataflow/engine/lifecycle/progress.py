"""How a submitted batch moves: tiers start, report progress, finish, and roll up.

Every status change goes through `transition`. The caller owns the
transaction; functions here take a session holding the batch's row lock
(SQLite: the write lock; PostgreSQL: SELECT ... FOR UPDATE), so cancel racing
completion, or two workers racing one tier, resolve to one outcome.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.clock import utcnow
from strataflow.engine.lifecycle.events import batch_completed, documents_written
from strataflow.errors import InvalidTransitionError
from strataflow.ids import new_id
from strataflow.services.batches.view import tier_rate
from strataflow.statuses import TERMINAL, Status, TaskType
from strataflow.store.tables import Batch, BatchTier, Task
from strataflow.transitions import Verdict, claim, create, release_lease, released, transition, try_transition

S = Status


def lock_batch(session: Session, batch_id: str) -> Batch | None:
    query = select(Batch).where(Batch.batch_id == batch_id)
    if session.get_bind().dialect.name != "sqlite":
        query = query.with_for_update()
    return session.scalar(query)


def tier_of(session: Session, batch_id: str, tier_num: int) -> BatchTier | None:
    return session.get(BatchTier, (batch_id, tier_num))


def open_task(session: Session, batch: Batch, task_type: TaskType, data: dict[str, Any]) -> Task:
    task = Task(
        task_id=new_id("task"),
        org_id=batch.org_id,
        namespace_id=batch.namespace_id,
        task_type=task_type.value,
        additional_data={
            "batch_id": batch.batch_id,
            "bucket_id": batch.bucket_id,
            "namespace_id": batch.namespace_id,
            **data,
        },
    )
    create(session, task, S.PENDING, f"opened for batch {batch.batch_id}")
    session.flush()
    return task


def make_runnable(session: Session, batch: Batch, tier: BatchTier, parent_task_id: str | None) -> None:
    """Give the tier a fresh task and point the batch at it; the scheduler will claim it."""
    task = open_task(
        session,
        batch,
        TaskType.ENGINE_FEATURE_EXTRACTOR_RUN,
        {"tier_num": tier.tier_num, "collection_ids": tier.collection_ids},
    )
    tier.task_id = task.task_id
    tier.parent_task_id = parent_task_id
    release_lease(tier)
    tier.checkpoint = {}  # a new round starts from its first row; only a take-over resumes
    batch.current_tier = tier.tier_num


def _task(session: Session, task_id: str | None) -> Task | None:
    return session.get(Task, task_id) if task_id else None


def _move_task(session: Session, task_id: str | None, target: Status, reason: str, error: str | None = None) -> None:
    task = _task(session, task_id)
    if task is None or try_transition(session, task, target, reason) is not Verdict.ACCEPTED:
        return  # no task, or it already finished (a finished task never changes)
    if error:
        task.error = error
        task.additional_data = {**(task.additional_data or {}), "error": error}


def start_tier(
    session: Session, batch: Batch, tier: BatchTier, owner: str, lease_until: Any, holder_died: bool = False
) -> int:
    """Claim the tier (its row locked by the caller) for `owner`; returns the claim's fence token.

    `holder_died`: taken from a holder seen dead on this host, before its lease ran out.
    """
    if tier.status == S.IN_PROGRESS:  # taken over: its holder's lease ran out, or it died here
        previous = tier.lease_owner or "a worker that stopped"
        transition(session, tier, S.PENDING, f"{previous} died" if holder_died else f"lease of {previous} expired")
    # The claim takes the next fence token: every write of the previous holder is refused from now on.
    if claim(session, tier, S.IN_PROGRESS, owner, lease_until, f"claimed by {owner}") is Verdict.REJECTED:
        raise InvalidTransitionError(
            f"tier {tier.tier_key} cannot be claimed from {tier.status}",
            {"entity": "tier", "id": tier.tier_key, "from": tier.status.value, "to": S.IN_PROGRESS},
        )
    if batch.status == S.PENDING:
        transition(session, batch, S.IN_PROGRESS, f"tier {tier.tier_num} started")
    _move_task(session, tier.task_id, S.IN_PROGRESS, f"claimed by {owner}")
    _move_task(session, batch.task_id, S.IN_PROGRESS, f"tier {tier.tier_num} started")
    batch.current_tier = tier.tier_num
    return tier.fence_token


def tier_outcome(rows_total: int, rows_failed: int) -> Status:
    if rows_failed == 0:
        return S.COMPLETED
    if rows_failed >= rows_total:
        return S.FAILED
    return S.COMPLETED_WITH_ERRORS


def finish_tier(session: Session, batch: Batch, tier: BatchTier, outcome: Status, message: str) -> None:
    """Record the tier's end, then start the next tier or finish the batch."""
    if tier.status != S.IN_PROGRESS or batch.status in TERMINAL:
        return  # canceled meanwhile, or a newer claim owns the tier
    transition(session, tier, outcome, message, completed_at=utcnow(), **released())
    session.flush()  # lock order: batch, tiers, then tasks
    _move_task(session, tier.task_id, outcome, message, message if outcome is S.FAILED else None)
    documents_written(session, batch, tier)
    if outcome is S.FAILED:
        batch.error = f"tier {tier.tier_num}: {message}"
        transition(session, batch, S.FAILED, f"tier {tier.tier_num} failed", completed_at=utcnow())
        _move_task(session, batch.task_id, S.FAILED, f"tier {tier.tier_num} failed", batch.error)
        batch_completed(session, batch)
        return
    following = tier_of(session, batch.batch_id, tier.tier_num + 1)
    if following is not None and following.status == S.CANCELED:
        # The tiers after this one were canceled while it ran: its documents stay, the batch ends here.
        reason = f"tier {following.tier_num} and later were canceled"
        transition(session, batch, S.CANCELED, reason, completed_at=utcnow())
        _move_task(session, batch.task_id, S.CANCELED, reason)
        return
    if following is not None:
        if following.status != S.PENDING:
            transition(session, following, S.PENDING, "retry round reaches this tier")
        make_runnable(session, batch, following, tier.task_id)
        return
    tiers = session.scalars(select(BatchTier).where(BatchTier.batch_id == batch.batch_id)).all()
    final = S.COMPLETED if all(t.status == S.COMPLETED for t in tiers) else S.COMPLETED_WITH_ERRORS
    transition(session, batch, final, "last tier finished", completed_at=utcnow())
    _move_task(session, batch.task_id, final, "last tier finished")
    batch_completed(session, batch)


def cancel(session: Session, batch: Batch, reason: str) -> bool:
    """Cancel a batch that has not finished; running work stops at its next chunk boundary.

    Rows are locked in the order every writer uses (batch, then tiers, then tasks), so
    a cancel racing a worker's progress report or finish cannot deadlock.
    """
    if try_transition(session, batch, S.CANCELED, reason, completed_at=utcnow()) is not Verdict.ACCEPTED:
        return False  # already finished (or canceled)
    tier_tasks = []
    for tier in session.scalars(
        select(BatchTier).where(BatchTier.batch_id == batch.batch_id).order_by(BatchTier.tier_num)
    ):
        if try_transition(session, tier, S.CANCELED, reason, **released()) is Verdict.ACCEPTED:
            tier_tasks.append(tier.task_id)
    session.flush()  # the tier rows first, then the tasks
    _move_task(session, batch.task_id, S.CANCELED, reason)
    for task_id in tier_tasks:
        _move_task(session, task_id, S.CANCELED, reason)
    return True


def cancel_tiers_from(session: Session, batch: Batch, tier_num: int, reason: str) -> list[int]:
    """Cancel tier `tier_num` and every tier after it; earlier tiers (and their documents) stay.

    A running tier among them stops at its next chunk (its fence no longer holds: it is not
    IN_PROGRESS any more). When no earlier tier is still queued or running, the batch ends
    CANCELED now; otherwise it ends when the earlier tier finishes (`finish_tier`).
    Returns the tier numbers this call canceled.
    """
    tiers = list(
        session.scalars(select(BatchTier).where(BatchTier.batch_id == batch.batch_id).order_by(BatchTier.tier_num))
    )
    canceled: list[BatchTier] = []
    for tier in tiers:
        if tier.tier_num >= tier_num and try_transition(session, tier, S.CANCELED, reason, **released()) is (
            Verdict.ACCEPTED
        ):
            canceled.append(tier)
    session.flush()  # the tier rows first, then the tasks
    for tier in canceled:
        _move_task(session, tier.task_id, S.CANCELED, reason)
    earlier_active = any(
        t.tier_num < tier_num and t.status in (S.PENDING, S.IN_PROGRESS) and t.tier_num == (batch.current_tier or 0)
        for t in tiers
    )
    if not earlier_active and try_transition(session, batch, S.CANCELED, reason, completed_at=utcnow()) is (
        Verdict.ACCEPTED
    ):
        _move_task(session, batch.task_id, S.CANCELED, reason)
    return [t.tier_num for t in canceled]


def move_task(session: Session, task_id: str | None, target: Status, reason: str) -> None:
    """Move a batch's task (or a tier's) when it has not finished yet; a finished task never changes."""
    _move_task(session, task_id, target, reason)


def fail_batch(session: Session, batch: Batch, tier: BatchTier, message: str) -> None:
    """The tier itself broke (not a row): fail it and the batch with the reason."""
    if tier.status == S.IN_PROGRESS:
        finish_tier(session, batch, tier, S.FAILED, message)


def record_progress(session: Session, batch: Batch, tier: BatchTier) -> None:
    """Mirror a running tier's progress into its task and the batch task (clients poll those)."""
    progress = {
        "current_tier": tier.tier_num,
        "total_tiers": batch.total_tiers,
        # Tier numbers are zero-based on the wire; people count from one.
        "tier_label": f"tier {tier.tier_num + 1} of {batch.total_tiers}",
        "rows_done": tier.rows_done,
        "rows_total": tier.rows_total,
        "documents_written": (tier.counters or {}).get("documents_written", 0),
        **tier_rate(tier),
    }
    if (tier.counters or {}).get("stalled"):  # the runner saw no progress: why, in Ray's words
        progress["stalled"] = tier.counters["stalled"]
    for task in (_task(session, tier.task_id), _task(session, batch.task_id)):
        if task is not None:
            task.additional_data = {**(task.additional_data or {}), "progress": progress, "current_tier": tier.tier_num}
