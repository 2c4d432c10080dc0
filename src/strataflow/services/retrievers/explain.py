"""execute/explain: the plan of a saved retriever without running it; and `explain=true`: what a run did.

For each stage: what it is, the indexes it would use (vector columns and their model, the BM25
full-text index), the filters it pushes down to the index (compiled, per collection), and how
many documents go in and come out at most. Durations are the mean of this retriever's stored
executions, stage by stage, when there are any; nothing here embeds a query or reads a document.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.errors import StrataflowError
from strataflow.index.store import DocumentIndex
from strataflow.retrieval.features import feature_targets
from strataflow.retrieval.inputs import MISSING, resolve, validate_inputs
from strataflow.retrieval.pipeline import Execution
from strataflow.retrieval.stages import stage_kind
from strataflow.services.documents.crud import where_of
from strataflow.services.retrievers.crud import get_retriever, resolve_collections
from strataflow.services.retrievers.history import stage_profile
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.tables import Collection, RetrieverExecution

HISTORY = 50  # past executions whose stage timings give the expected durations


def _pushed_filters(collections: list[Collection], filters: Any) -> list[dict[str, Any]]:
    if not isinstance(filters, dict) or not filters:
        return []
    pushed = []
    for collection in collections:
        try:
            pushed.append({"collection_id": collection.collection_id, "where": where_of(collection, filters)})
        except StrataflowError as exc:
            pushed.append({"collection_id": collection.collection_id, "error": exc.message})
    return pushed


def _stage_filters(collections: list[Collection], stage_id: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The filters a stage pushes down, its own and its searches', compiled per collection."""
    pushed = _pushed_filters(collections, params.get("filters"))
    for search in (params.get("searches") if stage_id == "feature_search" else None) or []:
        if isinstance(search, dict):
            pushed += _pushed_filters(collections, search.get("filters"))
    return pushed


def _indexes(collections: list[Collection], stage_id: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    uris: list[Any] = []
    if stage_id == "feature_search":
        uris = [s.get("feature_uri") for s in params.get("searches") or [] if isinstance(s, dict)]
    elif stage_id == "hybrid_search":
        uris = [params.get("feature_uri")]
    used: list[dict[str, Any]] = []
    for uri in uris:
        if not isinstance(uri, str) or "{{" in uri:
            continue
        for target in feature_targets(collections, uri):
            used.append(
                {
                    "kind": "vector",
                    "collection_id": target.collection.collection_id,
                    "feature_uri": uri,
                    "column": target.column,
                    "dimensions": target.dimensions,
                    "model": target.model,
                    "distance": "cosine",
                }
            )
    if stage_id in ("text_search", "hybrid_search"):
        used += [
            {"kind": "full_text", "collection_id": c.collection_id, "column": "search_text", "scoring": "bm25"}
            for c in collections
        ]
    return used


def _index_note(used: dict[str, Any]) -> str:
    if used["kind"] == "vector":
        return (
            f"vector index {used['column']} in {used['collection_id']} ({used['model'] or 'vectors'}, "
            f"{used['dimensions']}-d, cosine)"
        )
    return f"full-text BM25 index on {used['column']} in {used['collection_id']}"


def _output_bound(stage_id: str, params: dict[str, Any], incoming: int, first: bool, documents: int) -> int:
    """The most documents a stage can hand on."""

    def number(name: str, default: int) -> int:
        return number_of(params.get(name, default), default)

    if stage_id == "feature_search":
        searches = [s for s in params.get("searches") or [] if isinstance(s, dict)]
        found = sum(number_of(s.get("top_k"), 100) for s in searches)
        return min(number("final_top_k", 25), found, documents if first else incoming)
    if stage_id == "hybrid_search":
        return min(number("final_top_k", 25), 2 * number("top_k", 100), documents if first else incoming)
    if stage_id == "text_search":
        return min(number("top_k", 100), documents if first else incoming)
    if stage_id == "attribute_filter":
        return min(number("limit", 1000), documents) if first else incoming
    if stage_id == "limit":
        return min(number("limit", incoming), incoming)
    if stage_id == "sample":
        return min(number("count", 10), incoming)
    if stage_id == "aggregate":
        return incoming if params.get("include_documents") else 0
    return incoming


def number_of(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _past_durations(session: Session, scope: NamespaceScope, retriever_id: str) -> dict[str, float]:
    rows = session.scalars(
        select(RetrieverExecution.stage_statistics)
        .where(RetrieverExecution.namespace_id == scope.namespace_id, RetrieverExecution.retriever_id == retriever_id)
        .order_by(RetrieverExecution.created_at.desc())
        .limit(HISTORY)
    ).all()
    sums: dict[str, list[float]] = {}
    for statistics in rows:
        for name, stats in (statistics.get("stages") or {}).items():
            sums.setdefault(name, []).append(float(stats.get("duration_ms") or 0.0))
    return {name: round(sum(values) / len(values), 3) for name, values in sums.items()}


def explain(
    session: Session, index: DocumentIndex, scope: NamespaceScope, identifier: str, inputs: dict[str, Any] | None
) -> dict[str, Any]:
    row = get_retriever(session, scope, identifier)
    collections = resolve_collections(session, scope, list(row.collection_ids))
    given = inputs is not None
    values = validate_inputs(dict(row.input_schema), inputs or {}) if given else {}
    documents = sum(index.count(c.collection_id) for c in collections)
    durations = _past_durations(session, scope, row.retriever_id)
    plan: list[dict[str, Any]] = []
    details: dict[str, Any] = {}
    incoming = documents
    for position, stage in enumerate(row.stages):
        stage_id = stage["config"]["stage_id"]
        kind = stage_kind(stage_id, position)
        params = resolve(stage["config"]["parameters"], values) if given else dict(stage["config"]["parameters"])
        first = position == 0
        warnings: list[str] = []
        notes: list[str] = []
        if kind.searches and not first:
            notes.append("searches only among the hits of the stages before it")
        query = params.get("query") if stage_id != "feature_search" else None
        if given and kind.searches and (query is MISSING or query == ""):
            notes.append("its query input is missing: the search is skipped and the hits pass through")
        if not first and stage_id == "attribute_filter":
            notes.append("the filter is pushed down to the index, restricted to the current hits")
        pushed = _stage_filters(collections, stage_id, params)
        outgoing = _output_bound(stage_id, params, incoming, first, documents)
        indexes = _indexes(collections, stage_id, params)
        notes += [_index_note(used) for used in indexes]
        notes += [f"filter pushed down in {f['collection_id']}: {f.get('where') or f.get('error')}" for f in pushed]
        details[stage["stage_name"]] = {"stage_id": stage_id, "indexes_used": indexes, "filters_pushed_down": pushed}
        plan.append(
            {
                "stage_index": position,
                "stage_name": stage["stage_name"],
                "stage_type": stage["stage_type"],
                "stage_id": stage_id,
                "estimated_input": incoming if not first or not kind.searches else documents,
                "estimated_output": outgoing,
                "estimated_efficiency": round(outgoing / incoming, 4) if incoming else 0.0,
                "estimated_cost_credits": 0.0,
                "estimated_duration_ms": durations.get(stage["stage_name"], 0.0),
                "cache_likely": False,
                "indexes_used": indexes,
                "filters_pushed_down": pushed,
                "optimization_notes": notes,
                "warnings": warnings,
            }
        )
        incoming = outgoing
    total_ms = round(sum(p["estimated_duration_ms"] for p in plan), 3)
    slowest = max(plan, key=lambda p: p["estimated_duration_ms"], default=None)
    return {
        "retriever_id": row.retriever_id,
        "retriever_name": row.retriever_name,
        "estimated_cost": {
            "credits": 0.0,
            "duration_ms": total_ms,
            "documents_in_collections": documents,
            "past_executions": _count_history(session, scope, row.retriever_id),
        },
        "execution_plan": plan,
        "optimization_suggestions": [],
        "total_estimated_stages": len(plan),
        "bottleneck_stages": [slowest["stage_name"]] if slowest and slowest["estimated_duration_ms"] > 0 else [],
        "optimization_level": "none",
        "optimization_applied": False,
        "optimization_details": {"stages": details},  # the SDK keeps this; it drops unknown per-stage keys
        "inputs_checked": given,
    }


def _count_history(session: Session, scope: NamespaceScope, retriever_id: str) -> int:
    rows = session.scalars(
        select(RetrieverExecution.execution_id)
        .where(RetrieverExecution.namespace_id == scope.namespace_id, RetrieverExecution.retriever_id == retriever_id)
        .limit(HISTORY)
    ).all()
    return len(rows)


def executed_plan(run: Execution) -> dict[str, Any]:
    """`explain=true` on an execute: this run's profile (per-stage time, counts in and out, the
    bottleneck) with what each stage used: the indexes it searched and the filters it pushed down."""
    profile = stage_profile(run.stages, run.statistics, run.elapsed_ms)
    for entry, stage in zip(profile["stages"], run.stages, strict=True):
        stage_id = stage["config"]["stage_id"]
        params = resolve(stage["config"]["parameters"], run.inputs)
        entry["indexes_used"] = _indexes(run.collections, stage_id, params)
        entry["filters_pushed_down"] = _stage_filters(run.collections, stage_id, params)
    return {
        "execution_id": run.execution_id,
        **profile,
        "documents_returned": len(run.ranked),
        # Stages run as written: nothing is reordered or merged, so there is no optimizer summary to give.
        "optimization_applied": False,
    }
