"""Retention of the outbox: finished deliveries and old events are deleted, in bounded chunks.

`STRATAFLOW_EVENTS_RETENTION_DAYS` (0: keep forever). A delivery is deleted once it is finished
(COMPLETED, FAILED, CANCELED) and finished before the cutoff (a canceled one that never recorded
when: created before it), its attempt log with it. An event is deleted once it is older than the
cutoff and no delivery of it is left: an event with a delivery still PENDING or PROCESSING (or a
finished one still inside the period) stays, so nothing undelivered is ever lost to the sweep.

Each chunk is one short transaction of at most `CHUNK` rows, and one sweep does at most
`MAX_CHUNKS` of each kind; a larger backlog is worked off over the next sweeps. The trigger
loop runs the sweep (runtime.TRIGGER_SWEEPS) every `SWEEP_EVERY_S`, and at once again while a
sweep still found full chunks. Several processes may sweep together: a row deleted twice is
deleted once.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, exists, or_, select

from strataflow.clock import utcnow
from strataflow.engine.jobs import JobContext
from strataflow.statuses import Status
from strataflow.store.db import Database
from strataflow.store.tables import OutboxEvent, WebhookDelivery

log = logging.getLogger("strataflow.events")

CHUNK = 500
MAX_CHUNKS = 20
SWEEP_EVERY_S = 300.0
FINISHED = (Status.COMPLETED, Status.FAILED, Status.CANCELED)


@dataclass(frozen=True)
class Swept:
    deliveries: int
    events: int
    more: bool  # a chunk limit was reached: there may be more to delete now

    @property
    def total(self) -> int:
        return self.deliveries + self.events


def sweep(
    db: Database, retention_days: float, now: datetime | None = None, chunk: int = CHUNK, max_chunks: int = MAX_CHUNKS
) -> Swept:
    """Delete what the retention period no longer keeps; returns what was deleted."""
    if retention_days <= 0:
        return Swept(0, 0, False)
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    finished_before = and_(
        WebhookDelivery.status.in_(FINISHED),
        or_(
            WebhookDelivery.completed_at < cutoff,
            and_(WebhookDelivery.completed_at.is_(None), WebhookDelivery.created_at < cutoff),
        ),
    )
    deliveries, more = 0, False
    for _ in range(max_chunks):
        with db.read_session() as session:
            ids = list(session.scalars(select(WebhookDelivery.delivery_id).where(finished_before).limit(chunk)))
        if not ids:
            break
        with db.transaction() as session:  # the status is checked again: only a finished delivery goes
            result = session.execute(
                delete(WebhookDelivery)
                .where(WebhookDelivery.delivery_id.in_(ids), finished_before)
                .execution_options(synchronize_session=False)
            )
            deliveries += int(result.rowcount or 0)  # type: ignore[attr-defined]
        if len(ids) < chunk:
            break
    else:
        more = True
    unreferenced = and_(
        OutboxEvent.created_at < cutoff,
        ~exists().where(WebhookDelivery.event_seq == OutboxEvent.seq),
    )
    events = 0
    for _ in range(max_chunks):
        with db.read_session() as session:
            seqs = list(
                session.scalars(select(OutboxEvent.seq).where(unreferenced).order_by(OutboxEvent.seq).limit(chunk))
            )
        if not seqs:
            break
        with db.transaction() as session:  # checked again: an event some delivery points at stays
            result = session.execute(
                delete(OutboxEvent)
                .where(OutboxEvent.seq.in_(seqs), unreferenced)
                .execution_options(synchronize_session=False)
            )
            events += int(result.rowcount or 0)  # type: ignore[attr-defined]
        if len(seqs) < chunk:
            break
    else:
        more = True
    if deliveries or events:
        log.info("events retention sweep", extra={"deliveries": deliveries, "events": events, "more": more})
    return Swept(deliveries, events, more)


class RetentionSweep:
    """The trigger loop's sweep: at most every SWEEP_EVERY_S, at once again while a backlog remains."""

    def __init__(self, every_s: float = SWEEP_EVERY_S) -> None:
        self.every_s = every_s
        self._next = 0.0
        self._lock = threading.Lock()

    def __call__(self, context: JobContext) -> int:
        with self._lock:
            if time.monotonic() < self._next:
                return 0
            self._next = time.monotonic() + self.every_s
        swept = sweep(context.db, context.settings.events_retention_days)
        if swept.more:
            with self._lock:
                self._next = 0.0
        return swept.total


sweep_old_events = RetentionSweep()
