"""Stages that find documents: vector search over feature URIs, full-text search, and both at once.

A search stage that follows other stages searches only among the hits so far; as the first
stage it searches the retriever's collections whole.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import Field

from strataflow.errors import BadRequestError
from strataflow.retrieval.context import StageContext, StageParams, parse_params
from strataflow.retrieval.facets import FacetField, facet_counts
from strataflow.retrieval.features import feature_targets
from strataflow.retrieval.inputs import MISSING
from strataflow.retrieval.results import Hit, fuse, fuse_with_coverage
from strataflow.retrieval.shaping_stages import grouped


class SearchSpec(StageParams):
    feature_uri: str = Field(min_length=1)
    query: Any = None
    top_k: int = Field(default=100, ge=1, le=10_000)
    filters: dict[str, Any] | None = None
    weight: float = 1.0


class SearchGroupBy(StageParams):
    """The SDK's StageDefsFeatureSearchGroupBy: the search's hits grouped by a field."""

    field: str = Field(min_length=1)
    max_per_group: int = Field(default=1, ge=1, le=100)
    limit: int = Field(default=25, ge=1, le=500)  # groups; replaces final_top_k
    output_mode: str = Field(default="all", pattern="^(first|all|flatten)$")


class FeatureSearchParams(StageParams):
    searches: list[SearchSpec] = Field(min_length=1)
    final_top_k: int = Field(default=25, ge=1, le=10_000)
    fusion: str = "rrf"
    group_by: SearchGroupBy | None = None
    collection_identifiers: list[str] | None = None  # of the retriever's collections, the ones searched here
    facets: list[FacetField] | None = Field(default=None, max_length=20)


def _narrowed(ctx: StageContext, identifiers: list[str] | None) -> StageContext:
    """The context with only the named collections (ids or names), which must be the retriever's."""
    if not identifiers:
        return ctx
    chosen = [c for c in ctx.collections if c.collection_id in identifiers or c.collection_name in identifiers]
    known = {c.collection_id for c in chosen} | {c.collection_name for c in chosen}
    unknown = [i for i in identifiers if i not in known]
    if unknown:
        raise BadRequestError(
            "A stage's collection_identifiers must be among the retriever's collections",
            {
                "stage": ctx.stage_name,
                "unknown": unknown,
                "retriever_collections": [c.collection_id for c in ctx.collections],
            },
        )
    return replace(ctx, collections=chosen)


class TextSearchParams(StageParams):
    query: Any = None
    top_k: int = Field(default=100, ge=1, le=10_000)
    filters: dict[str, Any] | None = None


class HybridSearchParams(StageParams):
    query: Any = None
    feature_uri: str = Field(min_length=1)
    top_k: int = Field(default=100, ge=1, le=10_000)
    final_top_k: int = Field(default=25, ge=1, le=10_000)
    filters: dict[str, Any] | None = None
    fusion: str = "rrf_coverage"
    vector_weight: float = 1.0
    text_weight: float = 1.0


def _absent(query: Any) -> bool:
    return query is MISSING or query is None or query == ""


def vector_ranking(ctx: StageContext, spec: SearchSpec, hits: list[Hit] | None) -> list[Hit]:
    """One search: every collection holding the feature, merged by similarity (1 - cosine distance)."""
    found: list[Hit] = []
    for target in feature_targets(ctx.collections, spec.feature_uri):
        vector = ctx.embedder.vector_for(spec.query, target)
        where = ctx.where(target.collection, spec.filters, hits)
        if where == "(FALSE)":
            continue
        for doc, distance in ctx.index.nearest(
            target.collection.collection_id, target.column, vector, spec.top_k, where
        ):
            found.append(Hit(doc, 1.0 - distance))
    found.sort(key=lambda h: -h.score)
    return found[: spec.top_k]


def text_ranking(
    ctx: StageContext, query: Any, top_k: int, filters: dict[str, Any] | None, hits: list[Hit] | None
) -> list[Hit]:
    """BM25 over each collection's text; scores from different collections are comparable enough
    to merge because they come from the same scoring function."""
    if not isinstance(query, str):
        raise BadRequestError("A full-text query must be text", {"stage": ctx.stage_name})
    found: list[Hit] = []
    for collection in ctx.collections:
        where = ctx.where(collection, filters, hits)
        if where == "(FALSE)":
            continue
        found += [
            Hit(doc, score) for doc, score in ctx.index.text_search(collection.collection_id, query, top_k, where)
        ]
    found.sort(key=lambda h: -h.score)
    return found[:top_k]


def feature_search(ctx: StageContext, raw: dict[str, Any], hits: list[Hit] | None) -> list[Hit]:
    params: FeatureSearchParams = parse_params(FeatureSearchParams, ctx.stage_name, raw)
    ctx = _narrowed(ctx, params.collection_identifiers)
    rankings = []
    skipped = 0
    for position, spec in enumerate(params.searches):
        feature_targets(ctx.collections, spec.feature_uri)  # an unknown URI is refused even without a query
        if _absent(spec.query):
            skipped += 1  # an optional input left out switches its search off
            continue
        rankings.append((f"{position}:{spec.feature_uri}", vector_ranking(ctx, spec, hits), spec.weight))
    ctx.notes.update(searches_run=len(rankings), searches_skipped=skipped, candidates=sum(len(r[1]) for r in rankings))
    if params.facets:
        ctx.notes.update(facets=facet_counts(ctx, params.facets, [s.filters for s in params.searches], hits))
    if not rankings:
        return list(hits or [])
    ranked = rankings[0][1] if len(rankings) == 1 else fuse(rankings, params.fusion)
    if params.group_by is None:
        return ranked[: params.final_top_k]
    # Grouped: the groups' count replaces final_top_k (the SDK's decompose/recompose, one
    # video per scene found), over every candidate the searches found.
    group = params.group_by
    kept, groups = grouped(ranked, group.field, group.max_per_group, group.limit, group.output_mode)
    ctx.notes.update(groups=groups)
    return kept


def text_search(ctx: StageContext, raw: dict[str, Any], hits: list[Hit] | None) -> list[Hit]:
    params: TextSearchParams = parse_params(TextSearchParams, ctx.stage_name, raw)
    if _absent(params.query):
        ctx.notes.update(searches_skipped=1)
        return list(hits or [])
    found = text_ranking(ctx, params.query, params.top_k, params.filters, hits)
    ctx.notes.update(candidates=len(found))
    return found


def hybrid_search(ctx: StageContext, raw: dict[str, Any], hits: list[Hit] | None) -> list[Hit]:
    """Vector and full-text rankings of one query, fused (by default RRF with full-text hits weighed by
    how much of the query they hold: `results.fuse_with_coverage`)."""
    params: HybridSearchParams = parse_params(HybridSearchParams, ctx.stage_name, raw)
    feature_targets(ctx.collections, params.feature_uri)
    if _absent(params.query):
        ctx.notes.update(searches_skipped=2)
        return list(hits or [])
    spec = SearchSpec(feature_uri=params.feature_uri, query=params.query, top_k=params.top_k, filters=params.filters)
    vector = vector_ranking(ctx, spec, hits)
    text = text_ranking(ctx, params.query, params.top_k, params.filters, hits)
    ctx.notes.update(vector_candidates=len(vector), text_candidates=len(text))
    if params.fusion == "rrf_coverage":
        fused = fuse_with_coverage(vector, text, params.query, params.vector_weight, params.text_weight)
    else:
        fused = fuse([("vector", vector, params.vector_weight), ("text", text, params.text_weight)], params.fusion)
    return fused[: params.final_top_k]
