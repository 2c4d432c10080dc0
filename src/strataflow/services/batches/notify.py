"""The submit-time `webhook_url`: one POST when the batch ends (completed, failed or canceled).

The URL is checked against the outbound guard at submit and used only through it, so a tenant
cannot make the server reach its own network. It is stored with the batch; the event dispatcher
(engine/dispatcher.py) looks for ended batches not yet told, on every poll, so a restart between
the end and the POST still notifies. A batch is taken by a conditional UPDATE of
`webhook_sent_at` before the POST: of two dispatchers one sends, and a crash after the take
sends nothing (fire-and-forget: at most once per run; a failure is logged, the batch untouched).
A resubmitted batch ends again with a newer `completed_at`, and is told again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from strataflow.clock import isoformat, utcnow
from strataflow.errors import BadRequestError
from strataflow.outbound import FetchFailed, OutboundClient
from strataflow.statuses import TERMINAL, Status
from strataflow.store.db import Database
from strataflow.store.tables import Batch, BatchTier

log = logging.getLogger("strataflow.batches")

NOTIFY_TIMEOUT_S = 10.0
_PER_POLL = 50  # batches told per poll at most: a backlog is worked off over the next polls


def check_notify_url(outbound: OutboundClient, url: str) -> None:
    """A 400 for a URL the outbound guard would never POST to (scheme, host, internal address)."""
    try:
        outbound.check(url)
    except FetchFailed:
        raise BadRequestError(
            "The webhook_url is refused: it must be http(s) and reach a public address "
            "(internal targets only when STRATAFLOW_OUTBOUND_ALLOW names them)",
            {"webhook_url": url},
        ) from None


def _untold() -> Any:
    """Ended batches with a webhook that were not told of this end (of this run) yet."""
    return (
        Batch.webhook_url.is_not(None),
        Batch.completed_at.is_not(None),
        Batch.status.in_([s.value for s in TERMINAL]),
        or_(Batch.webhook_sent_at.is_(None), Batch.webhook_sent_at < Batch.completed_at),
    )


def notification_payload(batch: Batch, tiers: list[BatchTier]) -> dict[str, Any]:
    """What the receiver is told: the contract's fields, read from the batch and its tiers."""
    written = [t.counters.get("documents_written") for t in tiers if t.counters]
    reported = [int(w) for w in written if w is not None]
    first = tiers[0] if tiers else None
    processed = first.rows_done if first is not None else 0
    total = batch.object_count
    return {
        "batch_id": batch.batch_id,
        "bucket_id": batch.bucket_id,
        "batch_name": batch.batch_name,
        "status": Status(batch.status).value,
        "failure_reason": batch.error if batch.status in (Status.FAILED, Status.CANCELED) else None,
        "documents_written": sum(reported) if reported else None,
        "progress": {
            "processed": processed,
            "total": total,
            "percent": round(100 * processed / total, 1) if total else None,
            "tiers_completed": sum(1 for t in tiers if t.status == Status.COMPLETED),
            "total_tiers": len(tiers),
        },
        "completed_at": isoformat(batch.completed_at),
    }


@dataclass(frozen=True)
class Notification:
    batch_id: str
    url: str
    payload: dict[str, Any]


def _take(session: Session, batch_id: str) -> Notification | None:
    """Mark the batch told (only if it still is untold) and return what to send; None if another took it."""
    taken = session.execute(
        update(Batch)
        .where(Batch.batch_id == batch_id, *_untold())
        .values(webhook_sent_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if getattr(taken, "rowcount", 0) != 1:
        return None
    batch = session.get(Batch, batch_id)
    if batch is None or batch.webhook_url is None:
        return None
    tiers = list(session.scalars(select(BatchTier).where(BatchTier.batch_id == batch_id).order_by(BatchTier.tier_num)))
    return Notification(batch_id, batch.webhook_url, notification_payload(batch, tiers))


def _send(outbound: OutboundClient, note: Notification) -> None:
    body = json.dumps(note.payload, separators=(",", ":"), default=str).encode()
    headers = {"Content-Type": "application/json", "X-Mixpeek-Event": "batch.finished"}
    try:
        answer = outbound.post(note.url, body, headers, deadline_s=NOTIFY_TIMEOUT_S)
    except FetchFailed as exc:
        log.warning("batch webhook not delivered", extra={"batch_id": note.batch_id, "reason": exc.reason})
        return
    if not answer.ok:
        log.warning("batch webhook refused", extra={"batch_id": note.batch_id, "status_code": answer.status})


def notify_finished_batches(db: Database, outbound: OutboundClient) -> int:
    """Tell the webhooks of ended batches not told yet; returns how many POSTs were made."""
    with db.read_session() as session:  # a look first: an idle poll never takes the write lock
        due = list(session.scalars(select(Batch.batch_id).where(*_untold()).limit(_PER_POLL)))
    sent = 0
    for batch_id in due:
        with db.transaction() as session:
            note = _take(session, batch_id)
        if note is not None:  # the POST happens outside any transaction
            _send(outbound, note)
            sent += 1
    return sent
