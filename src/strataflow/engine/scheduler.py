"""The scheduler: claims runnable tiers from the database and runs them.

A tier is runnable when it is the batch's current tier and PENDING, or when it
is IN_PROGRESS under a lease nobody renewed (its worker died). Claims take a
row lock (PostgreSQL: FOR UPDATE SKIP LOCKED, so several workers never take the
same tier; SQLite: the single write lock). A heartbeat thread renews the lease
while the tier runs. Execution itself is delegated to a `TierExecutor`.

Ownership is fenced (engine/fencing.py): each claim raises the tier's fence
token, and every later write of the run — heartbeat, progress, per-chunk
commits, the tier's end — is refused once the token is no longer the tier's.
A worker that finds it lost its claim stops without another write.

Waking up: a submit in this process wakes this scheduler directly. Other
processes (`strataflow worker`s, API replicas) learn of it through PostgreSQL
LISTEN/NOTIFY on one channel, so they start within moments instead of at their
next poll; SQLite has one process anyway and keeps polling.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy import BindParameter, ColumnElement, and_, bindparam, func, or_, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from strataflow.clock import utcnow
from strataflow.engine.fencing import LeaseLost, TierFence, limit_idle
from strataflow.engine.leases import owner_is_dead, process_owner
from strataflow.engine.lifecycle import progress as lifecycle
from strataflow.engine.loops import PollingLoop
from strataflow.engine.tiers.job import ChunkCommit, TierExecutor, TierJob, TierResult
from strataflow.public_errors import internal_error_message
from strataflow.statuses import TERMINAL, Status
from strataflow.store.db import Database
from strataflow.store.tables import Batch, BatchTier
from strataflow.transitions import release_lease, renew_lease

log = logging.getLogger("strataflow.scheduler")

NOTIFY_CHANNEL = "strataflow_tiers"  # database-wide: a wake-up meant for another schema only costs a claim query


_TIERS = select(BatchTier).join(Batch, Batch.batch_id == BatchTier.batch_id)
_RUNNING = and_(BatchTier.status == Status.IN_PROGRESS, Batch.status == Status.IN_PROGRESS)


def _runnable_tier(now: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
    """A live batch's current tier waiting to start, or a running tier whose lease nobody renewed."""
    active = Batch.status.in_([Status.PENDING, Status.IN_PROGRESS])
    ready = and_(
        BatchTier.status == Status.PENDING,
        BatchTier.tier_num == func.coalesce(Batch.current_tier, 0),
        BatchTier.task_id.is_not(None),
    )
    orphaned = and_(BatchTier.status == Status.IN_PROGRESS, BatchTier.lease_expires_at < now)
    return and_(active, or_(ready, orphaned))


# The idle poll's two reads, built once (building a statement costs more than running it here).
_ANY_RUNNABLE_TIER = (
    select(BatchTier.batch_id)
    .join(Batch, Batch.batch_id == BatchTier.batch_id)
    .where(_runnable_tier(bindparam("now")))
    .limit(1)
)
_RUNNING_TIER_HOLDERS = (
    select(BatchTier.lease_owner)
    .join(Batch, Batch.batch_id == BatchTier.batch_id)
    .where(_RUNNING, BatchTier.lease_owner.is_not(None))
)


class Scheduler(PollingLoop):
    def __init__(
        self,
        db: Database,
        executor: TierExecutor,
        *,
        lease_s: float = 30.0,
        poll_interval_s: float = 1.0,
        workers: int = 1,
    ) -> None:
        super().__init__("strataflow-scheduler", workers, poll_interval_s)
        self.db = db
        self.executor = executor
        self.lease = timedelta(seconds=lease_s)
        self.owner = process_owner()

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        super().start()
        if not self.db.is_sqlite:
            self.spawn(self._listen, "strataflow-scheduler-listen")

    def stop(self, timeout: float = 30.0) -> None:
        # The LISTEN thread waits on its connection, not on the stop event: a NOTIFY ends that wait
        # now, where the join below waited out up to a second of it (on every PostgreSQL stop).
        self._stop.set()
        self.notify()
        super().stop(timeout)
        self.notify()  # tiers this process handed back can be claimed by the others now

    def notify(self) -> None:
        """Work may be runnable: wake this process's loops, and (PostgreSQL) every other process's."""
        self._wake.set()
        if self.db.is_sqlite:
            return
        try:
            with self.db.engine.connect() as conn:
                conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})
                conn.commit()
        except Exception:  # the others still find the work at their next poll
            log.warning("NOTIFY failed", exc_info=True)

    def _listen(self) -> None:
        """Turn NOTIFYs from other processes into local wake-ups; reconnect on errors."""
        while not self._stop.is_set():
            raw = None
            try:
                raw = self.db.engine.raw_connection()
                conn = raw.driver_connection
                assert conn is not None  # a checked-out connection has its driver connection
                raw.detach()  # a session-long LISTEN: this connection never goes back to the pool
                conn.autocommit = True
                conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                while not self._stop.is_set():
                    # A bounded wait, so a stop is noticed within a second.
                    for _ in conn.notifies(timeout=1.0, stop_after=1):
                        self._wake.set()
            except Exception:
                log.warning("LISTEN connection lost; reconnecting", exc_info=True)
                self._stop.wait(self.poll_interval_s)
            finally:
                if raw is not None:
                    try:
                        raw.close()
                    except Exception:  # noqa: BLE001, S110  a lost connection may fail to close; it is dropped anyway
                        pass

    def run_pending(self) -> int:
        ran = 0
        while not self._stop.is_set() and (claim := self.claim()) is not None:
            self.run(claim)
            ran += 1
        return ran

    # -- claiming ----------------------------------------------------------------
    def claim(self) -> TierFence | None:
        now = utcnow()
        if not self._worth_a_claim(now):
            return None
        with self.db.transaction() as session:
            query = _TIERS.where(_runnable_tier(now)).order_by(Batch.submitted_at).limit(1)
            if not self.db.is_sqlite:
                # Both rows in one statement, never waiting: cancel and finish lock the batch
                # and then its tiers, so a claim holding a tier while waiting for its batch
                # would deadlock with them.
                query = query.with_for_update(of=(BatchTier, Batch), skip_locked=True)
            tier, died = session.scalar(query), False
            if tier is None:
                tier, died = self._dead_owner_tier(session), True
            if tier is None:
                return None
            batch = lifecycle.lock_batch(session, tier.batch_id)
            assert batch is not None
            token = lifecycle.start_tier(session, batch, tier, self.owner, now + self.lease, holder_died=died)
            log.info(
                "tier claimed",
                extra={"batch_id": tier.batch_id, "tier": tier.tier_num, "owner": self.owner, "fence_token": token},
            )
            return TierFence(self.db, tier.batch_id, tier.tier_num, token, self.lease.total_seconds())

    def _worth_a_claim(self, now: datetime) -> bool:
        """A read-only look first: an idle poll takes no write lock (SQLite's is the whole database's,
        and every loop thread asked for it on every poll). What it finds is claimed, or found
        gone, under the lock; what appears just after it is found at the next poll or wake-up."""
        with self.db.single_read_connection() as conn:
            if conn.execute(_ANY_RUNNABLE_TIER, {"now": now}).first() is not None:
                return True
            return any(owner_is_dead(owner) for owner in conn.execute(_RUNNING_TIER_HOLDERS).scalars())

    def _dead_owner_tier(self, session: Session) -> BatchTier | None:
        """A running tier whose holder provably died on this host (leases.owner_is_dead): take it now."""
        dead = [
            (t.batch_id, t.tier_num, t.lease_owner)
            for t in session.scalars(_TIERS.where(_RUNNING, BatchTier.lease_owner.is_not(None)))
            if owner_is_dead(t.lease_owner)
        ]
        for batch_id, tier_num, owner in dead:
            # Lock it, and look again: another claimer may have taken it since it was read.
            again = _TIERS.where(
                _RUNNING, BatchTier.batch_id == batch_id, BatchTier.tier_num == tier_num, BatchTier.lease_owner == owner
            ).execution_options(populate_existing=True)
            if not self.db.is_sqlite:  # as in the main claim: a row another claimer holds is not ours
                again = again.with_for_update(of=(BatchTier, Batch), skip_locked=True)
            if (tier := session.scalar(again)) is not None:
                return tier
        return None

    # -- running -------------------------------------------------------------------
    def run(self, fence: TierFence) -> None:
        batch_id, tier_num = fence.batch_id, fence.tier_num
        beating, lost = threading.Event(), threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat, args=(fence, beating, lost), daemon=True)
        heartbeat.start()
        with self.db.read_session() as session:
            tier = session.get(BatchTier, (batch_id, tier_num))
            checkpoint = dict(tier.checkpoint or {}) if tier is not None else {}
        job = TierJob(
            batch_id,
            tier_num,
            self.owner,
            should_stop=lambda: self._should_stop(fence, lost),
            report=lambda done, total, counters: self._commit(fence, ChunkCommit(done, total, counters)),
            fence=fence,
            commit=lambda chunk: self._commit(fence, chunk),
            checkpoint=checkpoint,
        )
        try:
            result = self.executor(job)
            error = None
        except LeaseLost:
            # Another worker holds the tier now (or it was canceled): every write from here on is
            # someone else's, the end included.
            self._log_lost(fence)
            return
        except Exception as exc:
            if not self._holds(fence):  # e.g. a commit cut off after a pause: the tier is someone else's now
                self._log_lost(fence)
                return
            log.exception("tier failed", extra={"batch_id": batch_id, "tier": tier_num})  # the traceback: log only
            result, error = None, internal_error_message(exc, f"tier {tier_num}")
        finally:
            beating.set()
            heartbeat.join()
        self._finish(fence, result, error)

    def _log_lost(self, fence: TierFence) -> None:
        extra = {"batch_id": fence.batch_id, "tier": fence.tier_num, "fence_token": fence.token}
        with self.db.read_session() as session:
            tier = session.get(BatchTier, (fence.batch_id, fence.tier_num))
            if tier is not None and tier.fence_token == fence.token:
                log.info("tier ended elsewhere (canceled); stopping", extra=extra)
                return
        log.warning("tier lease lost; stopping without another write", extra=extra)

    @staticmethod
    def _holds(fence: TierFence) -> bool:
        try:
            return fence.holds()
        except SQLAlchemyError:  # the database is out of reach: let the finish decide, as before
            return True

    def _heartbeat(self, fence: TierFence, done: threading.Event, lost: threading.Event) -> None:
        """Renew the lease while the token is ours; once it is not, tell the run to stop."""
        interval = max(self.lease.total_seconds() / 3, 0.2)
        while not done.wait(interval):
            try:
                with self.db.transaction() as session:
                    limit_idle(session, self.db, self.lease.total_seconds())
                    renewed = renew_lease(
                        session,
                        BatchTier,
                        {"batch_id": fence.batch_id, "tier_num": fence.tier_num},
                        self.owner,
                        utcnow() + self.lease,
                        while_status=Status.IN_PROGRESS,
                        token=fence.token,
                    )
                if not renewed:
                    lost.set()
                    return
            except Exception:
                log.exception("heartbeat failed", extra={"batch_id": fence.batch_id, "tier": fence.tier_num})

    def _should_stop(self, fence: TierFence, lost: threading.Event) -> bool:
        return self._stop.is_set() or lost.is_set() or not fence.holds()

    def _commit(self, fence: TierFence, chunk: ChunkCommit) -> None:
        """Progress (and a chunk's rows and resume point) under our token; LeaseLost when it is gone."""
        with fence.transaction() as (session, tier):
            if chunk.write is not None:
                chunk.write(session)
            tier.rows_done, tier.rows_total = chunk.rows_done, chunk.rows_total
            tier.counters = {**(tier.counters or {}), **chunk.counters}
            if chunk.checkpoint is not None:
                tier.checkpoint = chunk.checkpoint
            session.flush()  # lock order: tier rows before task rows, as cancel and finish do
            batch = session.get(Batch, fence.batch_id)
            if batch is not None and batch.task_id:
                lifecycle.record_progress(session, batch, tier)

    def _finish(self, fence: TierFence, result: TierResult | None, error: str | None) -> None:
        batch_id, tier_num = fence.batch_id, fence.tier_num
        with self.db.transaction() as session:
            batch = lifecycle.lock_batch(session, batch_id)  # claims lock the batch too: none runs meanwhile
            tier = session.get(BatchTier, (batch_id, tier_num))
            if batch is None or tier is None:
                return
            if tier.fence_token != fence.token:
                log.warning(
                    "tier taken over before its end; the new owner finishes it",
                    extra={"batch_id": batch_id, "tier": tier_num, "fence_token": fence.token},
                )
                return
            if tier.lease_owner != self.owner:
                return  # canceled meanwhile: the cancel already ended the tier
            if batch.status in TERMINAL or (result is not None and result.stopped):
                # Canceled, or we are shutting down: leave the tier as it is. A clean shutdown
                # hands the tier over now, not after the lease.
                release_lease(tier, expire_now=self._stop.is_set())
                if tier.status == Status.IN_PROGRESS and not self._stop.is_set():
                    lifecycle.cancel(session, batch, "stopped")
                return
            if result is None:
                lifecycle.fail_batch(session, batch, tier, error or "tier failed")
                return
            tier.rows_total, tier.rows_done = result.rows_total, result.rows_total
            tier.counters = {**(tier.counters or {}), **result.counters}
            tier.extractor_jobs = result.extractor_jobs
            tier.errors = result.errors
            tier.error_summary = result.error_summary
            ran_on = f"tier {tier_num} attempt {tier.attempts} ran on {self.owner}"  # which worker, for operators
            tier.logs = (tier.logs or []) + result.logs + [ran_on]
            outcome = lifecycle.tier_outcome(result.rows_total, result.rows_failed)
            message = (
                f"{result.rows_total - result.rows_failed}/{result.rows_total} rows succeeded"
                if result.rows_total
                else "no input rows"
            )
            lifecycle.finish_tier(session, batch, tier, outcome, message)
        self.notify()  # the next tier may be runnable now
