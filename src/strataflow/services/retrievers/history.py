"""Retriever executions kept: recorded when a run ends, pruned after the retention period, read back.

A record holds the inputs, the pipeline as it ran, each stage's statistics, the ranked result ids
and scores (not the documents: those may change or go; `documents_retained` says so), timing and
status. Saved-retriever and ad-hoc executions share the table (`retriever_id` NULL for ad hoc).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from strataflow.clock import utcnow
from strataflow.config import Settings
from strataflow.errors import BadRequestError, not_found
from strataflow.retrieval.pipeline import Execution
from strataflow.services.events.outbox import emit
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.statuses import Status
from strataflow.store.db import Database
from strataflow.store.filters import FieldMap, compile_filters, sort_expression
from strataflow.store.pagination import PageRequest
from strataflow.store.tables import RetrieverExecution
from strataflow.transitions import create

log = logging.getLogger("strataflow.retrievers")

EVENT_RESULTS_MAX = 10  # ranked results a `resource.executed` event names
_STORED = {"completed": Status.COMPLETED, "partial": Status.COMPLETED_WITH_ERRORS, "failed": Status.FAILED}
_WIRE = {stored: wire for wire, stored in _STORED.items()}


def inputs_hash(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:32]


def query_summary(inputs: dict[str, Any]) -> str | None:
    """A short line naming the query: the first text input, cut to 200 characters."""
    for value in inputs.values():
        if isinstance(value, str) and value:
            return value[:200]
    return None


@dataclass(frozen=True)
class ExecutionRecorder:
    """Writes one execution's record when it ends (success or failure), in its own transaction."""

    db: Database
    scope: NamespaceScope
    settings: Settings
    retriever_id: str | None
    collection_ids: list[str]

    def record(self, run: Execution, error: str | None = None) -> None:
        """The record (unless retention is 0) and its `resource.executed` or `resource.execution_failed` event."""
        keep = self.settings.retriever_execution_retention_days > 0
        try:
            with self.db.transaction() as session:
                if keep:
                    self._write(session, run, error)
                    cutoff = utcnow() - timedelta(days=self.settings.retriever_execution_retention_days)
                    session.execute(
                        delete(RetrieverExecution).where(
                            RetrieverExecution.namespace_id == self.scope.namespace_id,
                            RetrieverExecution.created_at < cutoff,
                        )
                    )
                self._emit(session, run, error, keep)
        except Exception:  # the caller already has its answer; a lost record is logged, never a failed search
            log.exception("could not record retriever execution %s", run.execution_id)

    def _emit(self, session: Session, run: Execution, error: str | None, recorded: bool) -> None:
        failed = error is not None or run.status == "failed"
        payload = {
            "resource_type": "retriever",
            "retriever_id": self.retriever_id,
            "execution_id": run.execution_id,
            "execution_recorded": recorded,  # GET .../executions/{execution_id} finds it
            "status": "failed" if failed else run.status,
            "inputs": run.inputs,
            "collection_ids": self.collection_ids,
            "duration_ms": run.elapsed_ms,
            "total_returned": len(run.ranked),
            "results": [
                {"document_id": h.document.document_id, "collection_id": h.document.collection_id, "score": h.score}
                for h in run.ranked[:EVENT_RESULTS_MAX]
            ],
            "error": error,
        }
        emit(
            session,
            "resource.execution_failed" if failed else "resource.executed",
            org_id=self.scope.org_id,
            namespace_id=self.scope.namespace_id,
            resource_id=self.retriever_id or run.execution_id,
            payload=payload,
        )

    def _write(self, session: Session, run: Execution, error: str | None) -> None:
        status = "failed" if error is not None else run.status
        kept = run.ranked[: self.settings.retriever_execution_max_results]
        statistics = run.statistics
        processed = max(
            (max(int(s.get("input_count", 0)), int(s.get("output_count", 0))) for s in statistics.values()), default=0
        )
        now = utcnow()
        row = RetrieverExecution(
            execution_id=run.execution_id,
            namespace_id=self.scope.namespace_id,
            retriever_id=self.retriever_id,
            inputs=run.inputs,
            inputs_hash=inputs_hash(run.inputs),
            collection_ids=self.collection_ids,
            stages=run.stages,
            stage_statistics={"stages": statistics, "total_time_ms": run.elapsed_ms},
            results=[
                {"document_id": h.document.document_id, "collection_id": h.document.collection_id, "score": h.score}
                for h in kept
            ],
            total_processed=processed,
            total_returned=len(run.ranked),
            stages_completed=run.stages_completed,
            duration_ms=run.elapsed_ms,
            error=error,
            created_at=now - timedelta(milliseconds=run.elapsed_ms),
        )
        create(session, row, _STORED.get(status, Status.COMPLETED), error or "execution ended", completed_at=now)


def run_recorded(run: Execution, recorder: ExecutionRecorder) -> dict[str, Any]:
    """A plain execute: the pipeline's result, with the record written before it is answered."""
    result: dict[str, Any] = {}
    for event in recorded_steps(run, recorder):
        if event["event"] == "execution_complete":
            result = event["result"]
    return result


def recorded_steps(run: Execution, recorder: ExecutionRecorder) -> Iterator[dict[str, Any]]:
    """The pipeline's events; the record is written when the last one is produced or a stage fails."""
    try:
        for event in run.steps():
            if event["event"] == "execution_complete":
                recorder.record(run)
            yield event
    except Exception as exc:
        recorder.record(run, str(getattr(exc, "message", exc)))
        raise


# -- reading back -------------------------------------------------------------------------------


def get_execution(
    session: Session, scope: NamespaceScope, execution_id: str, retriever_id: str | None = None, adhoc: bool = False
) -> RetrieverExecution:
    query = select(RetrieverExecution).where(
        RetrieverExecution.namespace_id == scope.namespace_id, RetrieverExecution.execution_id == execution_id
    )
    if retriever_id is not None:
        query = query.where(RetrieverExecution.retriever_id == retriever_id)
    if adhoc:
        query = query.where(RetrieverExecution.retriever_id.is_(None))
    row = session.scalar(query)
    if row is None:
        raise not_found("Execution", execution_id)
    return row


EXECUTION_FIELDS = FieldMap(
    columns={
        "execution_id": RetrieverExecution.execution_id,
        "created_at": RetrieverExecution.created_at,
        "completed_at": RetrieverExecution.completed_at,
        "duration_ms": RetrieverExecution.duration_ms,
        "total_returned": RetrieverExecution.total_returned,
        "total_processed": RetrieverExecution.total_processed,
        "inputs_hash": RetrieverExecution.inputs_hash,
    },
    json_columns={"inputs": RetrieverExecution.inputs},
)


def list_executions(
    session: Session,
    scope: NamespaceScope,
    page: PageRequest,
    *,
    retriever_id: str | None,
    status: str | None = None,
    since: Any = None,
    until: Any = None,
    filters: dict[str, Any] | None = None,
    sorts: list[dict[str, Any]] | None = None,
) -> tuple[list[RetrieverExecution], int]:
    """Newest first unless `sorts` say otherwise; `retriever_id` None lists the ad-hoc executions.
    `filters` (the filter language) and `sorts` work on the fields of EXECUTION_FIELDS."""
    query = select(RetrieverExecution).where(RetrieverExecution.namespace_id == scope.namespace_id)
    if retriever_id is None:
        query = query.where(RetrieverExecution.retriever_id.is_(None))
    else:
        query = query.where(RetrieverExecution.retriever_id == retriever_id)
    if status:
        stored = _STORED.get(status.lower())
        if stored is None:
            raise BadRequestError(
                f"Unknown execution status '{status}'; use one of {', '.join(_STORED)}", {"status": status}
            )
        query = query.where(RetrieverExecution.status == stored)
    if since is not None:
        query = query.where(RetrieverExecution.created_at >= since)
    if until is not None:
        query = query.where(RetrieverExecution.created_at <= until)
    clause = compile_filters(filters, EXECUTION_FIELDS)
    if clause is not None:
        query = query.where(clause)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    for sort in sorts or []:
        if not isinstance(sort, dict) or not sort.get("field"):
            raise BadRequestError("Each entry of sorts needs a field", {"sorts": sorts})
        query = query.order_by(sort_expression(str(sort["field"]), str(sort.get("direction", "asc")), EXECUTION_FIELDS))
    ordered = query.order_by(RetrieverExecution.created_at.desc(), RetrieverExecution.execution_id)
    rows = list(session.scalars(ordered.offset(page.start).limit(page.limit)))
    return rows, total


def wire_status(row: RetrieverExecution) -> str:
    return _WIRE.get(row.status, "completed")


def summary_view(row: RetrieverExecution) -> dict[str, Any]:
    """RetrieverExecutionSummary (saved) and AdhocExecutionSummary (ad hoc) in one shape."""
    return {
        "execution_id": row.execution_id,
        "retriever_id": row.retriever_id,
        "execution_mode": "saved" if row.retriever_id else "adhoc",
        "status": wire_status(row),
        "created_at": row.created_at.isoformat(),
        "timestamp": row.created_at.isoformat(),
        "completed_at": row.completed_at.isoformat() if row.completed_at else None,
        "duration_ms": row.duration_ms,
        "credits_used": 0.0,
        "total_processed": row.total_processed,
        "total_returned": row.total_returned,
        "cache_hit_rate": 0.0,
        "inputs_hash": row.inputs_hash,
        "query_summary": query_summary(row.inputs),
        "stages_completed": row.stages_completed,
        "total_stages": len(row.stages),
        "collection_ids": list(row.collection_ids),
    }


def detail_view(row: RetrieverExecution) -> dict[str, Any]:
    """ExecutionDetail / AdhocExecutionDetail: the summary, the inputs, statistics and ranked results."""
    failed = row.status == Status.FAILED
    return {
        **summary_view(row),
        "inputs": json.dumps(row.inputs, default=str) if row.retriever_id is None else row.inputs,
        "stage_statistics": row.stage_statistics,
        "results": list(row.results),
        "documents": [],
        "documents_retained": False,
        "stages": list(row.stages),
        "error": row.error,
        "current_stage": None,
        "budget": {"credits_used": 0.0, "time_elapsed_ms": row.duration_ms},
        "warnings": [] if not failed else [f"execution failed: {row.error}"],
    }


def status_view(row: RetrieverExecution) -> dict[str, Any]:
    total = len(row.stages)
    return {
        "execution_id": row.execution_id,
        "retriever_id": row.retriever_id,
        "status": wire_status(row),
        "stages_completed": row.stages_completed,
        "total_stages": total,
        "progress": round(row.stages_completed / total, 4) if total else 1.0,
        "current_stage": None,
        "created_at": row.created_at.isoformat(),
        "completed_at": row.completed_at.isoformat() if row.completed_at else None,
        "duration_ms": row.duration_ms,
        "error": row.error,
    }


def stage_profile(stages: list[dict[str, Any]], statistics: dict[str, Any], total_ms: float) -> dict[str, Any]:
    """Where a run's time went: each stage's share of the total, the slowest stage named (a stored
    execution's profile and an execute's `explain_plan` both read it)."""
    profiled = []
    for position, stage in enumerate(stages):
        stats = statistics.get(stage["stage_name"])
        if stats is None:
            profiled.append({"stage_index": position, "stage_name": stage["stage_name"], "ran": False})
            continue
        profiled.append(
            {
                "stage_index": position,
                "stage_name": stage["stage_name"],
                "stage_id": stage["config"]["stage_id"],
                "ran": True,
                "duration_ms": stats.get("duration_ms", 0.0),
                "share_of_total": round(float(stats.get("duration_ms", 0.0)) / total_ms, 4) if total_ms else 0.0,
                "input_count": stats.get("input_count", 0),
                "output_count": stats.get("output_count", 0),
                "efficiency": stats.get("efficiency", 0.0),
                "error": stats.get("error"),
                "metadata": stats.get("metadata", {}),
            }
        )
    ran = [s for s in profiled if s["ran"]]
    slowest = max(ran, key=lambda s: float(s["duration_ms"]), default=None)
    return {
        "total_time_ms": total_ms,
        "stages": profiled,
        "bottleneck_stage": slowest["stage_name"] if slowest else None,
    }


def profile_view(row: RetrieverExecution) -> dict[str, Any]:
    """A stored execution's profile."""
    statistics: dict[str, Any] = dict(row.stage_statistics.get("stages") or {})
    total = float(row.stage_statistics.get("total_time_ms") or row.duration_ms or 0.0)
    return {
        "execution_id": row.execution_id,
        "retriever_id": row.retriever_id,
        "status": wire_status(row),
        **stage_profile(list(row.stages), statistics, total),
        "total_processed": row.total_processed,
        "total_returned": row.total_returned,
    }
