"""The stage catalogue and the stage configuration shape (StageConfig) as stored and echoed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from strataflow.errors import BadRequestError
from strataflow.retrieval import aggregate_stage, cluster_stage, enrich_stage, mmr_stage, taxonomy_stage
from strataflow.retrieval import ordering_stages as ordering
from strataflow.retrieval import search_stages as search
from strataflow.retrieval import shaping_stages as shaping
from strataflow.retrieval.context import StageContext, StageParams
from strataflow.retrieval.results import Hit

StageFunction = Callable[[StageContext, dict[str, Any], "list[Hit] | None"], list[Hit]]


@dataclass(frozen=True)
class StageKind:
    run: StageFunction
    stage_type: str  # filter | sort | reduce | apply | enrich (the SDK's StageType)
    params: type[StageParams]
    description: str
    icon: str = "layers"
    searches: bool = False  # finds documents (may start a pipeline) rather than reshaping hits


STAGES: dict[str, StageKind] = {
    "feature_search": StageKind(
        search.feature_search,
        "filter",
        search.FeatureSearchParams,
        "Vector search over one or more feature URIs, fused (rrf, weighted, max, dbsf)",
        "search",
        searches=True,
    ),
    "text_search": StageKind(
        search.text_search,
        "filter",
        search.TextSearchParams,
        "BM25 full-text search over payload text",
        "text",
        searches=True,
    ),
    "hybrid_search": StageKind(
        search.hybrid_search,
        "filter",
        search.HybridSearchParams,
        "Vector and full-text search of one query, fused (rank-weighted RRF by default)",
        "merge",
        searches=True,
    ),
    "attribute_filter": StageKind(
        shaping.attribute_filter, "filter", shaping.AttributeFilterParams, "Keep hits matching a filter", "filter"
    ),
    "sort_attribute": StageKind(
        shaping.sort_attribute, "sort", shaping.SortParams, "Order hits by one or more fields", "sort"
    ),
    "sort_relevance": StageKind(
        ordering.sort_relevance,
        "sort",
        ordering.SortRelevanceParams,
        "Order hits by their score, one search's score, or a numeric score field",
        "sort",
    ),
    "limit": StageKind(shaping.limit, "filter", shaping.LimitParams, "Keep a window of the hits", "scissors"),
    "sample": StageKind(
        ordering.sample, "filter", ordering.SampleParams, "Random or stratified sample of the hits", "shuffle"
    ),
    "deduplicate": StageKind(
        shaping.deduplicate, "filter", shaping.DeduplicateParams, "Best-ranked hit per value of a field", "copy"
    ),
    "group_by": StageKind(
        shaping.group_by, "reduce", shaping.GroupByParams, "Best hits per group (e.g. per video)", "group"
    ),
    "aggregate": StageKind(
        aggregate_stage.aggregate,
        "reduce",
        aggregate_stage.AggregateParams,
        "Statistics over the hits (count, sum, avg, percentiles, frequencies), optionally per group",
        "chart",
    ),
    "mmr": StageKind(
        mmr_stage.mmr, "sort", mmr_stage.MmrParams, "Maximal marginal relevance: relevant and diverse", "spark"
    ),
    "taxonomy_enrich": StageKind(
        taxonomy_stage.taxonomy_enrich,
        "apply",
        taxonomy_stage.TaxonomyEnrichParams,
        "Attach a taxonomy's matching nodes to each hit",
        "tree",
    ),
    "document_enrich": StageKind(
        enrich_stage.document_enrich,
        "enrich",
        enrich_stage.DocumentEnrichParams,
        "Join fields from documents of another collection onto each hit",
        "link",
    ),
    "cluster": StageKind(
        cluster_stage.cluster,
        "reduce",
        cluster_stage.ClusterParams,
        "Group the hits by their vectors (hdbscan, kmeans, ...): labeled hits, representatives or clusters",
        "clusters",
    ),
}
ALIASES = {"full_text_search": "text_search", "fulltext_search": "text_search", "hybrid": "hybrid_search"}

# Stages of the contract that need a model this server does not have: refused with the reason,
# never run with a made-up answer.
_NO_LANGUAGE_MODEL = (
    "needs a language model, and none is configured on this server; remove the stage or run it in your "
    "application on the retriever's results"
)
UNAVAILABLE: dict[str, str] = {
    "rerank": "needs a cross-encoder reranking model, and none is installed on this server; use sort_relevance, "
    "mmr or hybrid_search instead",
    "maxsim_rerank": "needs multi-vector (late interaction) embeddings, which no extractor here produces",
    "llm_filter": _NO_LANGUAGE_MODEL,
    "llm_enrich": _NO_LANGUAGE_MODEL,
    "summarize": _NO_LANGUAGE_MODEL,
    "query_expand": _NO_LANGUAGE_MODEL,
    "rag_prepare": _NO_LANGUAGE_MODEL,
    "api_call": "calls external services, which retrievers here may not do",
    "web_scrape": "calls external services, which retrievers here may not do",
    "external_web_search": "calls external services, which retrievers here may not do",
    "external_reverse_image": "calls external services, which retrievers here may not do",
    "code_execution": "runs code, which retrievers here may not do",
    "sql_lookup": "needs an external database connection, which retrievers here may not do",
    "json_transform": "is not available yet",
}


def stage_kind(stage_id: str, position: int) -> StageKind:
    kind = STAGES.get(ALIASES.get(stage_id, stage_id))
    if kind is None:
        if stage_id in UNAVAILABLE:
            raise BadRequestError(
                f"Stage '{stage_id}' (stage {position}) {UNAVAILABLE[stage_id]}",
                {"stage_id": stage_id, "reason": UNAVAILABLE[stage_id], "supported": sorted(STAGES)},
            )
        raise BadRequestError(
            f"Unknown stage_id '{stage_id}' in stage {position}", {"stage_id": stage_id, "supported": sorted(STAGES)}
        )
    return kind


def catalogue() -> list[dict[str, Any]]:
    """RetrieverStageDefinition for every stage that runs here, with its parameters' JSON schema."""
    return [
        {
            "stage_id": stage_id,
            "description": kind.description,
            "category": kind.stage_type,
            "icon": kind.icon,
            "parameter_schema": kind.params.model_json_schema(by_alias=True),
        }
        for stage_id, kind in STAGES.items()
    ]


def normalise_stage(raw: dict[str, Any], position: int) -> dict[str, Any]:
    """A StageConfig in the one shape we store and echo: `config` with stage_id and parameters,
    and the same parameters at the top level (newer SDKs read them there)."""
    if not isinstance(raw, dict):
        raise BadRequestError(f"Stage {position} must be an object")
    config: dict[str, Any] = raw["config"] if isinstance(raw.get("config"), dict) else {}
    stage_id = config.get("stage_id") or raw.get("stage_id")
    if not isinstance(stage_id, str) or not stage_id:
        raise BadRequestError(f"Stage {position} needs config.stage_id", {"stage": position})
    stage_id = ALIASES.get(stage_id, stage_id)
    kind = stage_kind(stage_id, position)
    parameters = config.get("parameters", raw.get("parameters")) or {}
    if not isinstance(parameters, dict):
        raise BadRequestError(f"Stage {position}: parameters must be an object", {"stage": position})
    name = raw.get("stage_name") or stage_id
    if not isinstance(name, str):
        raise BadRequestError(f"Stage {position}: stage_name must be a string", {"stage": position})
    return {
        "stage_name": name,
        "stage_type": raw.get("stage_type") or kind.stage_type,
        "config": {"stage_id": stage_id, "parameters": parameters},
        "parameters": parameters,
        "batch_size": raw.get("batch_size"),
        "description": raw.get("description"),
    }


def normalise_stages(stages: list[Any]) -> list[dict[str, Any]]:
    if not stages:
        raise BadRequestError("A retriever needs at least one stage")
    normalised = [normalise_stage(s, i) for i, s in enumerate(stages)]
    names = [s["stage_name"] for s in normalised]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise BadRequestError(
            f"Stage names must be unique; repeated: {', '.join(duplicates)}", {"duplicates": duplicates}
        )
    return normalised


def literal_feature_uris(stages: list[dict[str, Any]]) -> list[str]:
    """Feature URIs written out in the stages (not templates): checked when a retriever is saved."""
    uris = []
    for stage in stages:
        params = stage["parameters"]
        candidates = [s.get("feature_uri") for s in params.get("searches") or [] if isinstance(s, dict)]
        candidates.append(params.get("feature_uri"))
        uris += [u for u in candidates if isinstance(u, str) and "{{" not in u]
    return uris


SEARCH_STAGES = frozenset({"feature_search", "text_search", "hybrid_search"})
REQUEST_FILTER_STAGE = "__request_filters"


def with_request_filters(stages: list[dict[str, Any]], filters: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The stages with an execution's own `filters` ANDed into every search's filters, so each
    search ranks only what they allow. A pipeline without a search gets them as a last
    attribute_filter instead. The stored stages are not changed."""
    if not filters:
        return stages
    merged: list[dict[str, Any]] = []
    searched = False
    for stage in stages:
        stage_id = stage["config"]["stage_id"]
        if stage_id not in SEARCH_STAGES:
            merged.append(stage)
            continue
        searched = True
        parameters = dict(stage["config"]["parameters"])
        if stage_id == "feature_search":
            parameters["searches"] = [
                {**spec, "filters": _and(spec.get("filters"), filters)} if isinstance(spec, dict) else spec
                for spec in parameters.get("searches") or []
            ]
        else:
            parameters["filters"] = _and(parameters.get("filters"), filters)
        merged.append({**stage, "config": {**stage["config"], "parameters": parameters}, "parameters": parameters})
    if not searched:
        final = {
            "stage_name": REQUEST_FILTER_STAGE,
            "config": {"stage_id": "attribute_filter", "parameters": {"filters": filters}},
        }
        merged.append(normalise_stage(final, len(merged)))
    return merged


def _and(first: dict[str, Any] | None, second: dict[str, Any]) -> dict[str, Any]:
    return {"AND": [first, second]} if first else second
