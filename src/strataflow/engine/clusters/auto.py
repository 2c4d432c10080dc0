"""The watcher that re-runs clusters after batches (collections' `cluster_applications`).

It runs in the trigger loop. Each poll costs one query (the newest finished batch) unless a batch
finished since the last poll or a cluster is waiting (its run in progress, its cooldown); only then
are the applications read and each cluster's due check made, under the cluster's row lock
(services/clusters/auto.py), so several processes queue a batch's run once.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from sqlalchemy import func, select

from strataflow.engine.jobs import JobContext
from strataflow.services.clusters.auto import FINISHED_BATCH, auto_plans, run_if_due
from strataflow.store.tables import Batch

log = logging.getLogger("strataflow.clusters.auto")


class AutoExecutions:
    """Callable once per trigger-loop poll; returns how many runs it queued."""

    def __init__(self, context: JobContext) -> None:
        self.context = context
        self.seen: datetime | None = None
        self.recheck_at = 0.0  # monotonic time at which a waiting cluster is looked at again

    def __call__(self) -> int:
        with self.context.db.read_session() as session:
            newest = session.scalar(select(func.max(Batch.completed_at)).where(Batch.status.in_(FINISHED_BATCH)))
            if newest is None or (newest == self.seen and time.monotonic() < self.recheck_at):
                return 0
            plans = auto_plans(session)
        self.seen, self.recheck_at = newest, float("inf")
        queued = 0
        for plan in plans:
            try:
                with self.context.db.session() as session:
                    outcome, wait_s = run_if_due(session, self.context.services["index"], plan)
            except Exception:  # one broken cluster must not stop the others
                log.exception("auto-execution check failed", extra={"cluster_id": plan.cluster_id})
                outcome, wait_s = "error", 30.0
            queued += outcome == "queued"
            if wait_s is not None:
                self.recheck_at = min(self.recheck_at, time.monotonic() + max(wait_s, 1.0))
        return queued
