"""Evaluating an alert: run its retriever (or measure its system condition), test the condition,
decide whether to notify, record the execution and, when it notifies, the `alert.triggered` event
for its webhooks, in one transaction.

Notifying: once per rise of the condition (it held, after not holding or never having been
evaluated), again every `renotify_interval_seconds` while it keeps holding when that is set, and
never inside `cooldown_seconds` of the last notification.

The retriever runs with no transaction open (a read session); the outcome is written under the
alert's row lock, where the cooldown and the rise are checked again, so two evaluations racing
never both notify.
"""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.blobs import BlobStore
from strataflow.clock import as_utc, isoformat, utcnow
from strataflow.errors import StrataflowError, not_found
from strataflow.ids import new_id
from strataflow.index.store import DocumentIndex
from strataflow.schemas.retrievers import ExecuteRetrieverRequest
from strataflow.services.alerts import system
from strataflow.services.alerts.crud import Owner, alert_event, get_alert
from strataflow.services.retrievers.crud import get_retriever
from strataflow.services.retrievers.execution import saved_execution
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.statuses import Status
from strataflow.store.db import Database
from strataflow.store.tables import Alert, AlertExecution, Namespace, Retriever

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


class ClaimLost(Exception):
    """The claim an evaluation ran under was taken over meanwhile: nothing was recorded."""


# Called inside the transaction that records the outcome; False: the claim is lost, record nothing.
Fence = Callable[[Session], bool]


def covered_namespaces(session: Session, alert: Alert) -> list[str]:
    """The namespaces a system alert measures: its own, or the organisation's selected or all."""
    if alert.namespace_id is not None:
        return [alert.namespace_id]
    selector = alert.namespace_selector or {"mode": "all"}
    query = select(Namespace.namespace_id).where(Namespace.org_id == alert.org_id, Namespace.status == Status.ACTIVE)
    if selector.get("mode") == "selected":
        query = query.where(Namespace.namespace_id.in_(selector.get("namespace_ids") or []))
    return sorted(session.scalars(query))


def _retriever_scope(session: Session, alert: Alert) -> NamespaceScope:
    """Where a retriever alert's retriever runs: its own namespace (an organisation alert's
    retriever lives in one namespace of the organisation)."""
    retriever = session.get(Retriever, alert.retriever_id) if alert.retriever_id else None
    if retriever is None or (alert.namespace_id is not None and retriever.namespace_id != alert.namespace_id):
        raise not_found("Retriever", alert.retriever_id or "")
    namespace = session.get(Namespace, retriever.namespace_id)
    if namespace is None or namespace.org_id != alert.org_id:
        raise not_found("Retriever", retriever.retriever_id)
    return NamespaceScope(alert.org_id, namespace.namespace_id, namespace.namespace_name)


def evaluate(
    db: Database,
    index: DocumentIndex,
    blobs: BlobStore,
    owner: Owner,
    identifier: str,
    mode: str,
    *,
    inputs: dict[str, Any] | None = None,
    source_documents: list[str] | None = None,
    fence: Fence | None = None,
) -> dict[str, Any]:
    """Run the alert once and record what happened (an error of the retriever is recorded too).

    With `fence`, the outcome is recorded only if the fence still holds in the recording
    transaction (ClaimLost otherwise)."""
    started = time.monotonic()
    documents: list[dict[str, Any]] = []
    error: str | None = None
    collection_ids: list[str] = []
    with db.read_session() as session:
        alert = get_alert(session, owner, identifier)
        alert_id, condition, config = alert.alert_id, dict(alert.condition), dict(alert.notification_config)
        with_scores = bool(config.get("include_scores", True))
        try:
            if alert.source == "system":
                condition = {"trigger_on": "results", "min_count": condition.get("min_count"), "threshold": None}
                found = system.measure(
                    session, index, dict(alert.system_condition or {}), covered_namespaces(session, alert)
                )
                documents = [_system_match(f) for f in found]
            else:
                scope = _retriever_scope(session, alert)
                request = ExecuteRetrieverRequest(inputs={**(alert.inputs or {}), **(inputs or {})}, limit=MAX_MATCHES)
                collection_ids = list(get_retriever(session, scope, str(alert.retriever_id)).collection_ids)
                documents = list(
                    saved_execution(session, index, blobs, scope, str(alert.retriever_id), request).run()["documents"]
                )
        except StrataflowError as exc:
            error = exc.message
        except Exception as exc:  # a broken retriever is this execution's failure, not the caller's
            log.exception("alert evaluation failed", extra={"alert_id": alert_id})
            error = f"{type(exc).__name__}: {exc}"[:2000]
    held = error is None and holds(condition, documents)
    matches = [_match(d, with_scores) for d in documents[:MAX_MATCHES]]
    outcome = Outcome(held, matches, len(documents), error, source_documents, collection_ids)
    return _record(db, alert_id, mode, outcome, started, fence)


def _system_match(found: dict[str, Any]) -> dict[str, Any]:
    """A resource a system condition found, in the shape of a match (document_id: the resource's id)."""
    return {"document_id": found["resource_id"], "score": 1.0, **found}


@dataclass(frozen=True)
class Outcome:
    held: bool
    matches: list[dict[str, Any]]
    count: int
    error: str | None
    source_documents: list[str] | None
    collection_ids: list[str]


def _notify(alert: Alert, held: bool, now: datetime) -> tuple[bool, bool]:
    """(notify, suppressed_by_cooldown) for an evaluation whose condition `held`.

    Once per rise: a condition that keeps holding after it was notified notifies again only
    every renotify_interval_seconds; never inside the cooldown."""
    if not held:
        return False, False
    last = as_utc(alert.last_fired_at) if alert.last_fired_at is not None else None
    if last is not None and alert.cooldown_seconds and last + timedelta(seconds=alert.cooldown_seconds) > now:
        return False, True
    if not alert.rise_notified or last is None:
        return True, False
    interval = alert.renotify_interval_seconds
    return bool(interval and last + timedelta(seconds=interval) <= now), False


def _record(
    db: Database, alert_id: str, mode: str, outcome: Outcome, started: float, fence: Fence | None
) -> dict[str, Any]:
    with db.transaction() as session:
        query = select(Alert).where(Alert.alert_id == alert_id)
        if not db.is_sqlite:
            query = query.with_for_update()
        alert = session.scalar(query)
        if fence is not None and not fence(session):
            raise ClaimLost(alert_id)
        now = utcnow()
        if alert is None:
            notify, suppressed = False, False
        else:
            notify, suppressed = _notify(alert, outcome.held, now)
        config = alert.notification_config if alert is not None else {}
        deliveries = [
            {"channel_type": "webhook", "status": "deferred", "error": None, "channel_id": c.get("channel_id")}
            for c in (config.get("channels") or [])
        ]
        row = AlertExecution(
            execution_id=new_id("execution"),
            alert_id=alert_id,
            namespace_id=(alert.namespace_id or "") if alert is not None else "",
            collection_id=outcome.collection_ids[0] if outcome.collection_ids else "",
            mode=mode,
            triggered=notify,
            suppressed=suppressed,
            match_count=outcome.count,
            matches=outcome.matches,
            source_documents=outcome.source_documents,
            deliveries=deliveries if notify else [],
            error=outcome.error,
            executed_at=now,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        if alert is None:
            return execution_view(row)  # deleted meanwhile: nothing recorded against it
        session.add(row)
        session.flush()
        rising = not alert.rise_notified
        if outcome.error is None and not outcome.held:
            alert.rise_notified = False  # the condition fell: its next rise notifies
        if notify:
            alert.last_fired_at, alert.rise_notified = now, True
            alert_event(
                session,
                "alert.triggered",
                alert,
                execution_id=row.execution_id,
                mode=mode,
                match_count=outcome.count,
                matches=outcome.matches if config.get("include_matches", True) else None,
                source_documents=outcome.source_documents,
                renotification=not rising,
            )
        kind = "alert.execution.failed" if outcome.error else "alert.execution.completed"
        alert_event(session, kind, alert, execution_id=row.execution_id, triggered=notify, error=outcome.error)
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
