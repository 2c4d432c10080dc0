"""Alerts evaluated after ingest, at least once.

A collection's `alert_applications` with execution_mode `on_ingest` (the default) mark their
alerts in the transaction that finishes the tier writing the collection's documents: the alert's
claim row (`AlertIngestClaim`) goes PENDING. The alert sweep, run by the trigger loop off the
request path, claims a PENDING row under a lease (PROCESSING, with the next fence token; PostgreSQL
`FOR UPDATE SKIP LOCKED`, SQLite the write lock) through transitions.claim, evaluates the alert,
and records the execution together with the move to COMPLETED in one transaction, only while the
row still carries its token. An evaluator that dies mid-way leaves the row PROCESSING with a lease
that expires (at once when its PID is gone on this host): the next sweep takes it over and
evaluates again. So every marking is evaluated at least once, and recorded once per claim.

Markings that land while an evaluation runs are kept apart (`remarked`, `later_documents`) and
put the row back to PENDING when that evaluation completes, so they are evaluated too.

Inputs: the alert's own `inputs`, overridden by the application's `constant` input mappings.
Mappings from document fields (`document_field`, `source_blob`) are not applied: the evaluation
runs once per batch of written documents, not once per document.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from strataflow.clock import utcnow
from strataflow.engine.jobs import JobContext
from strataflow.engine.leases import owner_is_dead, process_owner
from strataflow.services.alerts.crud import AlertOwner
from strataflow.services.alerts.evaluate import ClaimLost, evaluate
from strataflow.statuses import Status
from strataflow.store.db import Database
from strataflow.store.tables import Alert, AlertIngestClaim, Collection
from strataflow.transitions import claim, create, released, transition

log = logging.getLogger("strataflow.alerts")
MAX_PENDING_DOCUMENTS = 100
LEASE_S = 300.0  # an evaluation runs one retriever; a holder gone longer than this is taken over


def on_ingest_applications(collection: Collection) -> list[dict[str, Any]]:
    return [
        a
        for a in collection.alert_applications or []
        if isinstance(a, dict) and a.get("alert_id") and (a.get("execution_mode") or "on_ingest") == "on_ingest"
    ]


def mark_pending(session: Session, collection_id: str, document_ids: list[str] | None = None) -> int:
    """Mark the alerts this collection applies on ingest as pending (in the caller's transaction)."""
    collection = session.get(Collection, collection_id)
    if collection is None:
        return 0
    marked = 0
    for application in on_ingest_applications(collection):
        alert = session.scalar(
            select(Alert).where(
                Alert.alert_id == application["alert_id"], Alert.namespace_id == collection.namespace_id
            )
        )
        if alert is None or not alert.enabled:
            continue
        query = select(AlertIngestClaim).where(AlertIngestClaim.alert_id == alert.alert_id)
        if session.get_bind().dialect.name != "sqlite":
            query = query.with_for_update()
        row = session.scalar(query)
        documents = list(document_ids or [])
        if row is None:
            row = AlertIngestClaim(
                alert_id=alert.alert_id,
                documents=documents[-MAX_PENDING_DOCUMENTS:],
                remarked=False,
                later_documents=[],
            )
            create(session, row, Status.PENDING, f"documents written to {collection_id}")
        elif row.status == Status.PROCESSING:  # evaluated now: these wait for the next round
            row.remarked = True
            row.later_documents = (list(row.later_documents or []) + documents)[-MAX_PENDING_DOCUMENTS:]
        else:
            if row.status == Status.COMPLETED:
                transition(session, row, Status.PENDING, f"documents written to {collection_id}")
                row.documents = []
            row.documents = (list(row.documents or []) + documents)[-MAX_PENDING_DOCUMENTS:]
        row.marked_at = utcnow()
        marked += 1
    return marked


def _constant_inputs(session: Session, alert: Alert) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    for collection in session.scalars(select(Collection).where(Collection.namespace_id == alert.namespace_id)):
        for application in on_ingest_applications(collection):
            if application.get("alert_id") != alert.alert_id:
                continue
            for mapping in application.get("input_mappings") or []:
                source = mapping.get("source") or {}
                if source.get("source_type") == "constant" and mapping.get("input_key"):
                    inputs[str(mapping["input_key"])] = source.get("value")
    return inputs


@dataclass(frozen=True)
class Claimed:
    alert_id: str
    org_id: str
    namespace_id: str
    token: int
    documents: list[str]
    inputs: dict[str, Any]


def _runnable(now: Any) -> Any:
    return or_(
        AlertIngestClaim.status == Status.PENDING,
        and_(AlertIngestClaim.status == Status.PROCESSING, AlertIngestClaim.lease_expires_at < now),
    )


def hand_back_dead(db: Database) -> int:
    """Claims held by a process of this host that no longer exists: their leases expire now."""
    with db.read_session() as session:
        owners = set(
            session.scalars(
                select(AlertIngestClaim.lease_owner)
                .where(AlertIngestClaim.status == Status.PROCESSING, AlertIngestClaim.lease_owner.is_not(None))
                .distinct()
            )
        )
    gone = [o for o in owners if o is not None and owner_is_dead(o)]
    for owner in gone:
        with db.transaction() as session:
            for row in session.scalars(
                select(AlertIngestClaim).where(
                    AlertIngestClaim.status == Status.PROCESSING, AlertIngestClaim.lease_owner == owner
                )
            ):
                transition(session, row, Status.PENDING, f"holder {owner} is gone", **released())
    return len(gone)


def claim_next(db: Database, owner: str, lease_s: float = LEASE_S) -> Claimed | None:
    """Claim one alert to evaluate after ingest (PENDING, or PROCESSING under an expired lease)."""
    now = utcnow()
    with db.read_session() as session:  # a look first: an idle poll never takes the write lock
        if session.scalar(select(AlertIngestClaim.alert_id).where(_runnable(now)).limit(1)) is None:
            return None
    with db.transaction() as session:
        query = select(AlertIngestClaim).where(_runnable(now)).order_by(AlertIngestClaim.marked_at).limit(1)
        if not db.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        row = session.scalar(query)
        if row is None:
            return None
        if row.status == Status.PROCESSING:
            transition(session, row, Status.PENDING, f"lease of {row.lease_owner} expired")
        alert = session.get(Alert, row.alert_id)
        if alert is None or alert.namespace_id is None:
            return None
        claim(session, row, Status.PROCESSING, owner, now + timedelta(seconds=lease_s), f"claimed by {owner}")
        return Claimed(
            alert.alert_id,
            alert.org_id,
            alert.namespace_id,
            row.fence_token,
            [str(d) for d in row.documents or []],
            _constant_inputs(session, alert),
        )


def _complete(claimed: Claimed, owner: str) -> Any:
    """The fence of the recording transaction: still ours, then COMPLETED (or PENDING again)."""

    def fence(session: Session) -> bool:
        query = select(AlertIngestClaim).where(AlertIngestClaim.alert_id == claimed.alert_id)
        if session.get_bind().dialect.name != "sqlite":
            query = query.with_for_update()
        row = session.scalar(query)
        if row is None or row.status != Status.PROCESSING or row.fence_token != claimed.token:
            return False
        if row.remarked:
            later = list(row.later_documents or [])
            transition(session, row, Status.PENDING, "documents written during the evaluation", **released())
            row.documents, row.later_documents, row.remarked = later, [], False
        else:
            transition(session, row, Status.COMPLETED, f"evaluated by {owner}", **released(), completed_at=utcnow())
            row.documents = []
        return True

    return fence


def evaluate_claimed(context: JobContext, claimed: Claimed, owner: str) -> bool:
    """Evaluate one claimed alert and record it with its completion; False when the claim was lost."""
    try:
        evaluate(
            context.db,
            context.services["index"],
            context.blobs,
            AlertOwner(claimed.org_id, claimed.namespace_id),
            claimed.alert_id,
            "on_ingest",
            inputs=claimed.inputs,
            source_documents=claimed.documents or None,
            fence=_complete(claimed, owner),
        )
    except ClaimLost:
        log.warning("alert evaluation claim taken over; not recorded", extra={"alert_id": claimed.alert_id})
        return False
    return True


def evaluate_pending(context: JobContext) -> int:
    """Evaluate every alert marked after ingest; returns how many this process recorded."""
    owner = process_owner()
    hand_back_dead(context.db)
    done = 0
    for _ in range(100):  # bounded per poll; the rest wait for the next one
        claimed = claim_next(context.db, owner)
        if claimed is None:
            break
        try:
            done += evaluate_claimed(context, claimed, owner)
        except Exception:  # one broken alert must not stop the sweep; its lease expires and it is retried
            log.exception("alert evaluation after ingest failed", extra={"alert_id": claimed.alert_id})
            break
    return done
