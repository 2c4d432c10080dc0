"""System alerts: built-in data-plane conditions measured from this server's own records.

A system condition (`SystemCondition`: a `type` and optional `params`) looks at the namespaces
the alert covers (its own; for an organisation alert the `namespace_selector`: every namespace
of the organisation, or the listed ones) and answers the resources in trouble; the alert's
condition holds when there is at least one. The same measures serve conditional triggers
(services/triggers/schedule.py), so both read one definition.

Conditions this server cannot measure (it keeps no dead-letter queue, no provider quotas or
budgets, no drift or accuracy baselines) are refused when the alert is saved, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from strataflow.clock import as_utc, isoformat, utcnow
from strataflow.errors import BadRequestError
from strataflow.index.store import DocumentIndex
from strataflow.statuses import Status
from strataflow.store.tables import (
    Batch,
    Collection,
    DocumentFailure,
    OutboxEvent,
    RetrieverExecution,
    RetrieverInteraction,
    Task,
)

# Why a contract condition is not measured here (a 400 at save time names it).
NOT_AVAILABLE: dict[str, str] = {
    "collection_drift": "this server keeps no embedding-drift baseline",
    "retriever_accuracy": "this server keeps no live accuracy measure (run an evaluation instead)",
    "retriever_alignment_regression": "this server keeps no alignment baseline",
    "dlq_growth": "this server keeps no dead-letter queue (use batch_error_rate or batch_failed)",
    "provider_quota_exhausted": "this server calls no metered provider",
    "budget_threshold": "this server keeps no spending budget",
    "ingest_stalled": "use batch_stalled (a batch making no progress) or collection_stale",
}


@dataclass(frozen=True)
class Measure:
    """One condition type: its parameters with their defaults, and the function that finds the
    resources in trouble (each a dict: resource_type, resource_id, name, and what was measured)."""

    defaults: dict[str, float | str | None]
    find: Callable[[Session, DocumentIndex | None, list[str], dict[str, Any], datetime], list[dict[str, Any]]]


def _window(params: dict[str, Any], now: datetime, key: str = "window_minutes") -> datetime:
    return now - timedelta(minutes=float(params[key]))


def _collections(session: Session, namespaces: list[str], params: dict[str, Any]) -> list[Collection]:
    query = select(Collection).where(Collection.namespace_id.in_(namespaces))
    if params.get("collection_id"):
        query = query.where(Collection.collection_id == params["collection_id"])
    return list(session.scalars(query.order_by(Collection.collection_id)))


def _collection_empty(
    session: Session, index: DocumentIndex | None, namespaces: list[str], params: dict[str, Any], now: datetime
) -> list[dict[str, Any]]:
    found = []
    for collection in _collections(session, namespaces, params):
        count = index.count(collection.collection_id) if index is not None else 0
        if count == 0:
            found.append(_resource("collection", collection.collection_id, collection.collection_name, documents=0))
    return found


def _collection_stale(
    session: Session, index: DocumentIndex | None, namespaces: list[str], params: dict[str, Any], now: datetime
) -> list[dict[str, Any]]:
    since = _window(params, now, "stale_minutes")
    found = []
    for collection in _collections(session, namespaces, params):
        last = session.scalar(
            select(func.max(OutboxEvent.created_at)).where(
                OutboxEvent.event_type == "collection.documents.written",
                OutboxEvent.resource_id == collection.collection_id,
            )
        )
        if last is None or as_utc(last) < since:
            found.append(
                _resource(
                    "collection",
                    collection.collection_id,
                    collection.collection_name,
                    last_written_at=isoformat(last),
                )
            )
    return found


def _batch_failed(
    session: Session, index: DocumentIndex | None, namespaces: list[str], params: dict[str, Any], now: datetime
) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(Batch).where(
            Batch.namespace_id.in_(namespaces),
            Batch.status == Status.FAILED,
            Batch.completed_at >= _window(params, now),
        )
    )
    return [
        _resource("batch", b.batch_id, b.bucket_id, error=b.error, completed_at=isoformat(b.completed_at)) for b in rows
    ]


def _batch_stalled(
    session: Session, index: DocumentIndex | None, namespaces: list[str], params: dict[str, Any], now: datetime
) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(Batch).where(
            Batch.namespace_id.in_(namespaces),
            Batch.status.in_([Status.PENDING, Status.IN_PROGRESS]),
            Batch.submitted_at.is_not(None),
            Batch.updated_at < _window(params, now, "stall_minutes"),
        )
    )
    return [
        _resource("batch", b.batch_id, b.bucket_id, status=str(b.status), last_progress_at=isoformat(b.updated_at))
        for b in rows
    ]


def _batch_error_rate(
    session: Session, index: DocumentIndex | None, namespaces: list[str], params: dict[str, Any], now: datetime
) -> list[dict[str, Any]]:
    threshold = float(params["error_rate_threshold"])
    found = []
    batches = session.scalars(
        select(Batch).where(
            Batch.namespace_id.in_(namespaces),
            Batch.completed_at >= _window(params, now),
            Batch.object_count > 0,
        )
    )
    for batch in batches:
        failed = (
            session.scalar(
                select(func.count(func.distinct(DocumentFailure.root_object_id))).where(
                    DocumentFailure.batch_id == batch.batch_id, DocumentFailure.resolved.is_(False)
                )
            )
            or 0
        )
        rate = failed / batch.object_count
        if rate > threshold:
            found.append(_resource("batch", batch.batch_id, batch.bucket_id, error_rate=round(rate, 4), failed=failed))
    return found


def _executions(
    session: Session, namespaces: list[str], params: dict[str, Any], now: datetime
) -> dict[str, list[RetrieverExecution]]:
    query = select(RetrieverExecution).where(
        RetrieverExecution.namespace_id.in_(namespaces),
        RetrieverExecution.retriever_id.is_not(None),
        RetrieverExecution.created_at >= _window(params, now),
    )
    if params.get("retriever_id"):
        query = query.where(RetrieverExecution.retriever_id == params["retriever_id"])
    by_retriever: dict[str, list[RetrieverExecution]] = {}
    for row in session.scalars(query.order_by(RetrieverExecution.created_at)):
        by_retriever.setdefault(str(row.retriever_id), []).append(row)
    return by_retriever


def _retriever_no_results(
    session: Session, index: DocumentIndex | None, namespaces: list[str], params: dict[str, Any], now: datetime
) -> list[dict[str, Any]]:
    found = []
    for retriever_id, runs in _executions(session, namespaces, params, now).items():
        if all(r.total_returned == 0 for r in runs):
            found.append(_resource("retriever", retriever_id, retriever_id, executions=len(runs), returned=0))
    return found


def _retriever_latency(
    session: Session, index: DocumentIndex | None, namespaces: list[str], params: dict[str, Any], now: datetime
) -> list[dict[str, Any]]:
    ceiling = float(params["latency_ms"])
    found = []
    for retriever_id, runs in _executions(session, namespaces, params, now).items():
        durations = sorted(float(r.duration_ms) for r in runs)
        p95 = durations[min(len(durations) - 1, int(0.95 * len(durations)))]
        if p95 > ceiling:
            found.append(_resource("retriever", retriever_id, retriever_id, p95_ms=round(p95, 1), runs=len(runs)))
    return found


def _retriever_no_interactions(
    session: Session, index: DocumentIndex | None, namespaces: list[str], params: dict[str, Any], now: datetime
) -> list[dict[str, Any]]:
    found = []
    since = _window(params, now)
    for retriever_id, runs in _executions(session, namespaces, params, now).items():
        interactions = session.scalar(
            select(func.count())
            .select_from(RetrieverInteraction)
            .where(RetrieverInteraction.retriever_id == retriever_id, RetrieverInteraction.created_at >= since)
        )
        if not interactions:
            found.append(_resource("retriever", retriever_id, retriever_id, executions=len(runs), interactions=0))
    return found


def _task_queue_degraded(
    session: Session, index: DocumentIndex | None, namespaces: list[str], params: dict[str, Any], now: datetime
) -> list[dict[str, Any]]:
    waiting = list(
        session.scalars(
            select(Task).where(
                Task.namespace_id.in_(namespaces),
                Task.status == Status.PENDING,
                Task.created_at < _window(params, now, "max_wait_minutes"),
            )
        )
    )
    return [_resource("task", t.task_id, t.task_type, waiting_since=isoformat(t.created_at)) for t in waiting]


def _resource(kind: str, identifier: str, name: str, **measured: Any) -> dict[str, Any]:
    return {"resource_type": kind, "resource_id": identifier, "name": name, **measured}


MEASURES: dict[str, Measure] = {
    "collection_empty": Measure({"collection_id": None}, _collection_empty),
    "collection_stale": Measure({"collection_id": None, "stale_minutes": 1440.0}, _collection_stale),
    "batch_failed": Measure({"window_minutes": 60.0}, _batch_failed),
    "batch_stalled": Measure({"stall_minutes": 30.0}, _batch_stalled),
    "batch_error_rate": Measure({"window_minutes": 60.0, "error_rate_threshold": 0.1}, _batch_error_rate),
    "retriever_no_results": Measure({"retriever_id": None, "window_minutes": 60.0}, _retriever_no_results),
    "retriever_latency": Measure(
        {"retriever_id": None, "window_minutes": 60.0, "latency_ms": 2000.0}, _retriever_latency
    ),
    "retriever_no_interactions": Measure({"retriever_id": None, "window_minutes": 1440.0}, _retriever_no_interactions),
    "task_queue_degraded": Measure({"max_wait_minutes": 15.0}, _task_queue_degraded),
}
CHECK_PARAM = "check_interval_seconds"  # how often the alert sweep checks it (default below)
DEFAULT_CHECK_S = 60
MIN_CHECK_S = 10


def normalise(condition_type: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """The stored `{type, params}` with every default filled in; a 400 for what cannot be measured."""
    if condition_type in NOT_AVAILABLE:
        raise BadRequestError(
            f"System condition '{condition_type}' is not available on this server: {NOT_AVAILABLE[condition_type]}",
            {"type": condition_type, "available": sorted(MEASURES)},
        )
    measure = MEASURES.get(condition_type)
    if measure is None:
        raise BadRequestError(
            f"Unknown system condition type '{condition_type}'", {"type": condition_type, "available": sorted(MEASURES)}
        )
    given = dict(params or {})
    unknown = sorted(set(given) - set(measure.defaults) - {CHECK_PARAM})
    if unknown:
        raise BadRequestError(
            f"Unknown parameter(s) {unknown} for system condition '{condition_type}'",
            {"accepted": sorted({*measure.defaults, CHECK_PARAM})},
        )
    stored: dict[str, Any] = {}
    for key, default in measure.defaults.items():
        value = given.get(key, default)
        if default is None or isinstance(default, str):  # an id narrowing the measure
            if value is not None and not isinstance(value, str):
                raise BadRequestError(f"params.{key} must be a string", {key: value})
        elif not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise BadRequestError(f"params.{key} must be a positive number", {key: value})
        stored[key] = value
    check = given.get(CHECK_PARAM, DEFAULT_CHECK_S)
    if not isinstance(check, int) or isinstance(check, bool) or check < MIN_CHECK_S:
        raise BadRequestError(
            f"params.{CHECK_PARAM} must be a whole number of at least {MIN_CHECK_S}", {CHECK_PARAM: check}
        )
    stored[CHECK_PARAM] = check
    return {"type": condition_type, "params": stored}


def measure(
    session: Session, index: DocumentIndex | None, condition: dict[str, Any], namespaces: list[str]
) -> list[dict[str, Any]]:
    """The resources in trouble under this condition, in these namespaces (empty: it does not hold)."""
    if not namespaces:
        return []
    found = MEASURES[condition["type"]].find(session, index, namespaces, dict(condition.get("params") or {}), utcnow())
    return found


def check_interval_s(condition: dict[str, Any]) -> int:
    return int((condition.get("params") or {}).get(CHECK_PARAM) or DEFAULT_CHECK_S)
