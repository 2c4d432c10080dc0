"""The scheduler on its own: claiming a tier under a lease, renewing, taking over, finishing.

The executor is a plain function (the scheduler's seam); everything else is the real database.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from strataflow.clock import as_utc, utcnow
from strataflow.engine.lifecycle import progress
from strataflow.engine.scheduler import Scheduler
from strataflow.engine.tiers.job import TierJob, TierResult
from strataflow.statuses import Status
from strataflow.store.db import Database
from strataflow.store.tables import Batch, BatchTier, StatusEvent, Task
from strataflow.transitions import renew_lease
from tests.unit.rows import submitted_batch, tenant


class RecordingExecutor:
    """Runs a tier by answering a fixed result (or raising), and remembers the jobs it got."""

    def __init__(self, result: TierResult | None = None, error: Exception | None = None) -> None:
        self.result = result or TierResult(rows_total=3, rows_failed=0)
        self.error = error
        self.jobs: list[TierJob] = []

    def __call__(self, job: TierJob) -> TierResult:
        self.jobs.append(job)
        job.report(3, 3, {"documents_written": 3})
        if self.error is not None:
            raise self.error
        return self.result


def _batch(db: Database, tiers: int = 1) -> str:
    with db.transaction() as session:
        return submitted_batch(session, tenant(session), tiers).batch_id


def _scheduler(db: Database, executor: RecordingExecutor | None = None, owner: str = "host-a:1") -> Scheduler:
    scheduler = Scheduler(db, executor or RecordingExecutor(), lease_s=60)
    scheduler.owner = owner
    return scheduler


def test_claim_takes_the_current_tier_under_a_lease(db: Database) -> None:
    batch_id = _batch(db)
    before = utcnow()
    fence = _scheduler(db).claim()
    assert fence is not None and (fence.batch_id, fence.tier_num, fence.token) == (batch_id, 0, 1)
    with db.read_session() as session:
        tier = session.get(BatchTier, (batch_id, 0))
        batch = session.get(Batch, batch_id)
        assert tier is not None and batch is not None
        assert (tier.status, tier.lease_owner, tier.attempts) == (Status.IN_PROGRESS, "host-a:1", 1)
        assert tier.lease_expires_at is not None and as_utc(tier.lease_expires_at) >= before + timedelta(seconds=59)
        assert tier.started_at is not None
        assert (batch.status, batch.current_tier) == (Status.IN_PROGRESS, 0)
        tier_task = session.get(Task, tier.task_id)
        assert tier_task is not None and tier_task.status is Status.IN_PROGRESS
        reasons = session.scalars(
            select(StatusEvent.reason).where(StatusEvent.entity_id == tier.tier_key).order_by(StatusEvent.event_id)
        ).all()
        assert reasons == ["test", "claimed by host-a:1"]


def test_a_leased_tier_is_not_claimed_twice(db: Database) -> None:
    _batch(db)
    assert _scheduler(db, owner="host-a:1").claim() is not None
    assert _scheduler(db, owner="host-b:2").claim() is None


def test_an_expired_lease_is_taken_over_with_one_more_attempt(db: Database) -> None:
    batch_id = _batch(db)
    assert _scheduler(db, owner="host-a:1").claim() is not None
    with db.transaction() as session:  # the first owner stopped renewing a while ago
        tier = session.get(BatchTier, (batch_id, 0))
        assert tier is not None
        tier.lease_expires_at = utcnow() - timedelta(seconds=1)
    fence = _scheduler(db, owner="host-b:2").claim()
    assert fence is not None and (fence.batch_id, fence.tier_num, fence.token) == (batch_id, 0, 2)
    with db.read_session() as session:
        tier = session.get(BatchTier, (batch_id, 0))
        assert tier is not None and (tier.lease_owner, tier.attempts) == ("host-b:2", 2)
        moves = session.execute(
            select(StatusEvent.from_status, StatusEvent.to_status, StatusEvent.reason)
            .where(StatusEvent.entity_id == tier.tier_key)
            .order_by(StatusEvent.event_id)
        ).all()
        assert [tuple(m) for m in moves[-2:]] == [
            ("IN_PROGRESS", "PENDING", "lease of host-a:1 expired"),
            ("PENDING", "IN_PROGRESS", "claimed by host-b:2"),
        ]


def test_only_the_owner_renews_a_lease(db: Database) -> None:
    batch_id = _batch(db)
    assert _scheduler(db, owner="host-a:1").claim() is not None
    later = utcnow() + timedelta(hours=1)
    key = {"batch_id": batch_id, "tier_num": 0}
    with db.transaction() as session:
        assert renew_lease(session, BatchTier, key, "host-b:2", later) is False
        assert renew_lease(session, BatchTier, key, "host-a:1", later) is True
    with db.read_session() as session:
        tier = session.get(BatchTier, (batch_id, 0))
        assert tier is not None and tier.lease_expires_at is not None
        assert abs((as_utc(tier.lease_expires_at) - later).total_seconds()) < 1


def test_a_run_finishes_the_tier_and_the_batch(db: Database) -> None:
    batch_id = _batch(db)
    executor = RecordingExecutor(TierResult(rows_total=3, rows_failed=1))
    scheduler = _scheduler(db, executor)
    assert scheduler.run_pending() == 1
    assert [(job.batch_id, job.tier_num, job.owner) for job in executor.jobs] == [(batch_id, 0, "host-a:1")]
    with db.read_session() as session:
        tier = session.get(BatchTier, (batch_id, 0))
        batch = session.get(Batch, batch_id)
        assert tier is not None and batch is not None
        assert (tier.status, tier.lease_owner, tier.rows_done) == (Status.COMPLETED_WITH_ERRORS, None, 3)
        assert tier.completed_at is not None
        assert batch.status is Status.COMPLETED_WITH_ERRORS and batch.completed_at is not None
        batch_task = session.get(Task, batch.task_id)
        assert batch_task is not None and batch_task.status is Status.COMPLETED_WITH_ERRORS


def test_the_next_tier_becomes_runnable_when_one_finishes(db: Database) -> None:
    batch_id = _batch(db, tiers=2)
    scheduler = _scheduler(db)
    assert scheduler.run_pending() == 2
    with db.read_session() as session:
        tiers = session.scalars(
            select(BatchTier).where(BatchTier.batch_id == batch_id).order_by(BatchTier.tier_num)
        ).all()
        assert [t.status for t in tiers] == [Status.COMPLETED, Status.COMPLETED]
        assert tiers[1].parent_task_id == tiers[0].task_id
        batch = session.get(Batch, batch_id)
        assert batch is not None and batch.status is Status.COMPLETED


def test_an_executor_that_breaks_fails_the_batch_with_its_error(db: Database) -> None:
    batch_id = _batch(db)
    assert _scheduler(db, RecordingExecutor(error=RuntimeError("disk full"))).run_pending() == 1
    with db.read_session() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None and batch.status is Status.FAILED
        assert batch.error is not None and "RuntimeError" in batch.error  # the type; the text stays in the log


def test_a_canceled_batch_is_not_claimed(db: Database) -> None:
    batch_id = _batch(db)
    with db.transaction() as session:
        batch = progress.lock_batch(session, batch_id)
        assert batch is not None and progress.cancel(session, batch, "changed my mind") is True
        assert progress.cancel(session, batch, "again") is False  # a finished batch answers no
    assert _scheduler(db).claim() is None
    with db.read_session() as session:
        tier = session.get(BatchTier, (batch_id, 0))
        assert tier is not None and tier.status is Status.CANCELED


# SQLite only: PostgreSQL's claim never waited (FOR UPDATE SKIP LOCKED), and locks nothing when idle.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_an_idle_poll_does_not_wait_for_the_write_lock(db: Database) -> None:
    """With nothing to claim, a poll only reads: SQLite's one write lock, held by a long writer
    (a confirm, a cluster run), does not hold it up. It used to wait up to the busy timeout for
    the lock on every poll of every loop thread, and take it when it got it."""
    _batch(db)
    assert _scheduler(db, owner="host-a:1").claim() is not None  # running under a live lease: nothing left
    with db.transaction() as writer:
        writer.execute(text("UPDATE batches SET status = status"))  # SQLite's write lock, held
        assert _scheduler(db, owner="host-b:2").claim() is None
