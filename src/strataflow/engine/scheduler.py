"""The scheduler: claims runnable tiers from the database and runs them.

A tier is runnable when it is the batch's current tier and PENDING, or when it
is IN_PROGRESS under a lease nobody renewed (its worker died). Claims take a
row lock (PostgreSQL: FOR UPDATE SKIP LOCKED, so several workers never take the
same tier; SQLite: the single write lock). A heartbeat thread renews the lease
while the tier runs. Execution itself is delegated to a `TierExecutor`.

Waking up: a submit in this process wakes this scheduler directly. Other
processes (`strataflow worker`s, API replicas) learn of it through PostgreSQL
LISTEN/NOTIFY on one channel, so they start within moments instead of at their
next poll; SQLite has one process anyway and keeps polling.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, text, update

from strataflow.clock import utcnow
from strataflow.engine.leases import owner_is_dead, process_owner
from strataflow.engine.lifecycle import progress as lifecycle
from strataflow.engine.loops import PollingLoop
from strataflow.engine.tiers.job import TierExecutor, TierJob, TierResult
from strataflow.public_errors import internal_error_message
from strataflow.statuses import TERMINAL, Status
from strataflow.store.db import Database
from strataflow.store.tables import Batch, BatchTier

log = logging.getLogger("strataflow.scheduler")

NOTIFY_CHANNEL = "strataflow_tiers"  # database-wide: a wake-up meant for another schema only costs a claim query


class Scheduler(PollingLoop):
    def __init__(self, db: Database, executor: TierExecutor, *, lease_s: float = 30.0,
                 poll_interval_s: float = 1.0, workers: int = 1) -> None:
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
            self.run(*claim)
            ran += 1
        return ran


    # -- claiming ----------------------------------------------------------------
    def claim(self) -> tuple[str, int] | None:
        now = utcnow()
        active = Batch.status.in_([Status.PENDING.value, Status.IN_PROGRESS.value])
        ready = and_(BatchTier.status == Status.PENDING.value, BatchTier.tier_num == func.coalesce(Batch.current_tier, 0),
                     BatchTier.task_id.is_not(None))
        orphaned = and_(BatchTier.status == Status.IN_PROGRESS.value, BatchTier.lease_expires_at < now)
        with self.db.transaction() as session:
            query = (select(BatchTier).join(Batch, Batch.batch_id == BatchTier.batch_id)
                     .where(active, or_(ready, orphaned)).order_by(Batch.submitted_at).limit(1))
            if not self.db.is_sqlite:
                # Both rows in one statement, never waiting: cancel and finish lock the batch
                # and then its tiers, so a claim holding a tier while waiting for its batch
                # would deadlock with them.
                query = query.with_for_update(of=(BatchTier, Batch), skip_locked=True)
            tier = session.scalar(query) or self._dead_owner_tier(session)
            if tier is None:
                return None
            batch = lifecycle.lock_batch(session, tier.batch_id)
            assert batch is not None
            lifecycle.start_tier(session, batch, tier, self.owner, now + self.lease)
            log.info("tier claimed", extra={"batch_id": tier.batch_id, "tier": tier.tier_num, "owner": self.owner})
            return tier.batch_id, tier.tier_num

    def _dead_owner_tier(self, session: Any) -> BatchTier | None:
        query = (select(BatchTier).join(Batch, Batch.batch_id == BatchTier.batch_id)
                 .where(BatchTier.status == Status.IN_PROGRESS.value, Batch.status == Status.IN_PROGRESS.value))
        for tier in session.scalars(query):
            if owner_is_dead(tier.lease_owner):
                return tier
        return None

    # -- running -------------------------------------------------------------------
    def run(self, batch_id: str, tier_num: int) -> None:
        beating = threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat, args=(batch_id, tier_num, beating), daemon=True)
        heartbeat.start()
        job = TierJob(batch_id, tier_num, self.owner,
                      should_stop=lambda: self._should_stop(batch_id, tier_num),
                      report=lambda done, total, counters: self._report(batch_id, tier_num, done, total, counters))
        try:
            result = self.executor(job)
            error = None
        except Exception as exc:
            log.exception("tier failed", extra={"batch_id": batch_id, "tier": tier_num})  # the traceback: log only
            result, error = None, internal_error_message(exc, f"tier {tier_num}")
        finally:
            beating.set()
            heartbeat.join()
        self._finish(batch_id, tier_num, result, error)

    def _heartbeat(self, batch_id: str, tier_num: int, done: threading.Event) -> None:
        interval = max(self.lease.total_seconds() / 3, 0.2)
        while not done.wait(interval):
            try:
                with self.db.transaction() as session:
                    session.execute(
                        update(BatchTier)
                        .where(BatchTier.batch_id == batch_id, BatchTier.tier_num == tier_num,
                               BatchTier.lease_owner == self.owner)
                        .values(lease_expires_at=utcnow() + self.lease)
                    )
            except Exception:
                log.exception("heartbeat failed", extra={"batch_id": batch_id, "tier": tier_num})

    def _should_stop(self, batch_id: str, tier_num: int) -> bool:
        if self._stop.is_set():
            return True
        with self.db.read_session() as session:
            tier = session.get(BatchTier, (batch_id, tier_num))
            return tier is None or tier.status != Status.IN_PROGRESS.value or tier.lease_owner != self.owner

    def _report(self, batch_id: str, tier_num: int, done: int, total: int, counters: dict[str, Any]) -> None:
        with self.db.transaction() as session:
            tier = session.get(BatchTier, (batch_id, tier_num))
            if tier is None or tier.lease_owner != self.owner:
                return
            tier.rows_done, tier.rows_total = done, total
            tier.counters = {**(tier.counters or {}), **counters}
            session.flush()  # lock order: tier rows before task rows, as cancel and finish do
            batch = session.get(Batch, batch_id)
            if batch is not None and batch.task_id:
                lifecycle.record_progress(session, batch, tier)

    def _finish(self, batch_id: str, tier_num: int, result: TierResult | None, error: str | None) -> None:
        with self.db.transaction() as session:
            batch = lifecycle.lock_batch(session, batch_id)
            tier = session.get(BatchTier, (batch_id, tier_num))
            if batch is None or tier is None or tier.lease_owner != self.owner:
                return
            if Status(batch.status) in TERMINAL or (result is not None and result.stopped):
                tier.lease_owner = None  # canceled, or we are shutting down: leave the tier as it is
                if self._stop.is_set():  # a clean shutdown hands the tier over now, not after the lease
                    tier.lease_expires_at = utcnow()
                if Status(tier.status) is Status.IN_PROGRESS and not self._stop.is_set():
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
            message = (f"{result.rows_total - result.rows_failed}/{result.rows_total} rows succeeded"
                       if result.rows_total else "no input rows")
            lifecycle.finish_tier(session, batch, tier, outcome, message)
        self.notify()  # the next tier may be runnable now
