"""Evaluating an alert: run its retriever, test the condition, respect the cooldown, record the
execution and, when it fires, the `alert.triggered` event for its webhooks, in one transaction.

The retriever runs with no transaction open (a read session); the outcome is written under the
alert's row lock, where the cooldown is checked again, so two evaluations racing never both fire
inside one cooldown.
"""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from strataflow.blobs import BlobStore
from strataflow.clock import as_utc, isoformat, utcnow
from strataflow.errors import StrataflowError
from strataflow.ids import new_id
from strataflow.index.store import DocumentIndex
from strataflow.schemas.retrievers import ExecuteRetrieverRequest
from strataflow.services.alerts.crud import alert_event, get_alert
from strataflow.services.retrievers.crud import get_retriever
from strataflow.services.retrievers.execution import saved_execution
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.db import Database
from strataflow.store.tables import Alert, AlertExecution

log = logging.getLogger("strataflow.alerts")

MODES = ("on_demand", "on_ingest", "scheduled")
MAX_MATCHES = 50  # kept with the execution and sent in the notification
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "eq": operator.eq,
    "ne": operator.ne,
}


def _field(document: dict[str, Any], path: str) -> Any:
    value: Any = document
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            value = None
            break
        value = value[part]
    if value is None and "." not in path:
        value = (document.get("metadata") or {}).get(path) if isinstance(document.get("metadata"), dict) else None
    return value


def holds(condition: dict[str, Any], documents: list[dict[str, Any]]) -> bool:
    if condition.get("trigger_on") == "no_results":
        return not documents
    if len(documents) < int(condition.get("min_count") or 1):
        return False
    threshold = condition.get("threshold")
    if not threshold:
        return True
    value = _field(documents[0], threshold["field"])
    try:
        return value is not None and bool(_COMPARE[threshold["operator"]](value, threshold["value"]))
    except TypeError:  # a string against a number: the comparison cannot hold
        return False


def _match(document: dict[str, Any], with_scores: bool) -> dict[str, Any]:
    score = document.get("score")
    score = min(1.0, max(0.0, float(score))) if isinstance(score, int | float) and with_scores else 0.0
    metadata = {k: v for k, v in document.items() if k not in ("_internal", "document_blobs", "score")}
    return {
        "document_id": document.get("document_id"),
        "asset_id": (document.get("_internal") or {}).get("root_object_id"),
        "score": score,
        "metadata": metadata,
    }


def evaluate(
    db: Database,
    index: DocumentIndex,
    blobs: BlobStore,
    scope: NamespaceScope,
    identifier: str,
    mode: str,
    *,
    inputs: dict[str, Any] | None = None,
    source_documents: list[str] | None = None,
) -> dict[str, Any]:
    """Run the alert once and record what happened (an error of the retriever is recorded too)."""
    started = time.monotonic()
    documents: list[dict[str, Any]] = []
    error: str | None = None
    with db.read_session() as session:
        alert = get_alert(session, scope, identifier)
        alert_id, condition, config = alert.alert_id, dict(alert.condition), dict(alert.notification_config)
        request = ExecuteRetrieverRequest(inputs={**(alert.inputs or {}), **(inputs or {})}, limit=MAX_MATCHES)
        collection_ids = list(get_retriever(session, scope, alert.retriever_id).collection_ids)
        try:
            documents = list(
                saved_execution(session, index, blobs, scope, alert.retriever_id, request).run()["documents"]
            )
        except StrataflowError as exc:
            error = exc.message
        except Exception as exc:  # a broken retriever is this execution's failure, not the caller's
            log.exception("alert evaluation failed", extra={"alert_id": alert_id})
            error = f"{type(exc).__name__}: {exc}"[:2000]
    fired = error is None and holds(condition, documents)
    matches = [_match(d, bool(config.get("include_scores", True))) for d in documents[:MAX_MATCHES]]
    return _record(db, alert_id, mode, fired, matches, len(documents), error, source_documents, collection_ids, started)


def _record(
    db: Database,
    alert_id: str,
    mode: str,
    fired: bool,
    matches: list[dict[str, Any]],
    count: int,
    error: str | None,
    source_documents: list[str] | None,
    collection_ids: list[str],
    started: float,
) -> dict[str, Any]:
    with db.transaction() as session:
        query = select(Alert).where(Alert.alert_id == alert_id)
        if not db.is_sqlite:
            query = query.with_for_update()
        alert = session.scalar(query)
        now = utcnow()
        suppressed = False
        if alert is not None and fired and alert.last_fired_at is not None and alert.cooldown_seconds:
            suppressed = as_utc(alert.last_fired_at) + timedelta(seconds=alert.cooldown_seconds) > now
        triggered = fired and not suppressed and alert is not None
        config = alert.notification_config if alert is not None else {}
        deliveries = [
            {"channel_type": "webhook", "status": "deferred", "error": None, "channel_id": c.get("channel_id")}
            for c in (config.get("channels") or [])
        ]
        row = AlertExecution(
            execution_id=new_id("execution"),
            alert_id=alert_id,
            namespace_id=alert.namespace_id if alert is not None else "",
            collection_id=collection_ids[0] if collection_ids else "",
            mode=mode,
            triggered=triggered,
            suppressed=fired and suppressed,
            match_count=count,
            matches=matches,
            source_documents=source_documents,
            deliveries=deliveries if triggered else [],
            error=error,
            executed_at=now,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        if alert is None:
            return execution_view(row)  # deleted meanwhile: nothing recorded against it
        session.add(row)
        session.flush()
        if triggered:
            alert.last_fired_at = now
            alert_event(
                session,
                "alert.triggered",
                alert,
                execution_id=row.execution_id,
                mode=mode,
                match_count=count,
                matches=matches if config.get("include_matches", True) else None,
                source_documents=source_documents,
            )
        outcome = "alert.execution.failed" if error else "alert.execution.completed"
        alert_event(session, outcome, alert, execution_id=row.execution_id, triggered=triggered, error=error)
        return execution_view(row)


def execution_view(row: AlertExecution) -> dict[str, Any]:
    return {
        "alert_id": row.alert_id,
        "collection_id": row.collection_id,
        "execution_id": row.execution_id,
        "triggered": row.triggered,
        "match_count": row.match_count,
        "matches": row.matches,
        "source_documents": row.source_documents,
        "executed_at": isoformat(row.executed_at) or "",
        "duration_ms": row.duration_ms,
        "deliveries": [{k: v for k, v in d.items() if k != "channel_id"} for d in row.deliveries or []],
        "mode": row.mode,
        "suppressed_by_cooldown": row.suppressed,
        "error": row.error,
    }
