"""Alerts evaluated after ingest: a collection's `alert_applications` with execution_mode
`on_ingest` (the default) mark their alerts pending in the transaction that finishes the tier
writing the collection's documents; the alert sweep (run by the trigger loop, off the request
path) claims each pending alert with a conditional UPDATE, so one process evaluates it, once per
marking however many tiers marked it meanwhile.

Inputs: the alert's own `inputs`, overridden by the application's `constant` input mappings.
Mappings from document fields (`document_field`, `source_blob`) are not applied: the evaluation
runs once per batch of written documents, not once per document.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from strataflow.clock import utcnow
from strataflow.engine.jobs import JobContext
from strataflow.services.alerts.evaluate import evaluate
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.tables import Alert, Collection, Namespace

log = logging.getLogger("strataflow.alerts")
MAX_PENDING_DOCUMENTS = 100


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
        if alert.pending_since is None:
            alert.pending_since = utcnow()
        if document_ids:
            alert.pending_documents = ((alert.pending_documents or []) + document_ids)[-MAX_PENDING_DOCUMENTS:]
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


def evaluate_pending(context: JobContext) -> int:
    """Evaluate every alert marked pending; returns how many this process evaluated."""
    with context.db.read_session() as session:
        pending = list(
            session.execute(select(Alert.alert_id, Alert.pending_since).where(Alert.pending_since.is_not(None)))
        )
    done = 0
    for alert_id, since in pending:
        with context.db.transaction() as session:
            alert = session.get(Alert, alert_id)
            if alert is None:
                continue
            documents = list(alert.pending_documents or [])
            claimed = session.execute(
                update(Alert)
                .where(Alert.alert_id == alert_id, Alert.pending_since == since)
                .values(pending_since=None, pending_documents=None)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another process took it
            namespace = session.get(Namespace, alert.namespace_id)
            if namespace is None:
                continue
            scope = NamespaceScope(alert.org_id, namespace.namespace_id, namespace.namespace_name)
            inputs = _constant_inputs(session, alert)
        try:
            evaluate(
                context.db,
                context.services["index"],
                context.blobs,
                scope,
                alert_id,
                "on_ingest",
                inputs=inputs,
                source_documents=documents or None,
            )
            done += 1
        except Exception:  # one broken alert must not stop the sweep
            log.exception("alert evaluation after ingest failed", extra={"alert_id": alert_id})
    return done
