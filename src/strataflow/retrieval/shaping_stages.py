"""Stages that narrow, order or reshape the hits found so far."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import numpy as np
from pydantic import Field

from strataflow.errors import BadRequestError
from strataflow.retrieval.context import StageContext, StageParams, parse_params
from strataflow.retrieval.features import feature_targets
from strataflow.retrieval.results import Hit, field_value
from strataflow.schemas.common import SortOption

FIRST_STAGE_SCAN = 10_000  # a filter as the first stage lists at most this many documents


class AttributeFilterParams(StageParams):
    filters: dict[str, Any]
    limit: int = Field(default=1000, ge=1, le=FIRST_STAGE_SCAN)


class SortParams(StageParams):
    field: str | None = None
    direction: str = Field(default="desc", pattern="^(?i)(asc|desc)$")
    sort_by: list[SortOption] | None = None


class LimitParams(StageParams):
    limit: int = Field(ge=0, le=10_000)
    offset: int = Field(default=0, ge=0)


class DeduplicateParams(StageParams):
    field: str = "document_id"


class GroupByParams(StageParams):
    field: str = Field(min_length=1)
    max_per_group: int = Field(default=1, ge=1, le=1000)
    limit: int | None = Field(default=None, ge=1)


class MmrParams(StageParams):
    lambda_: float = Field(default=0.7, ge=0.0, le=1.0, alias="lambda")
    top_k: int | None = Field(default=None, ge=1)
    feature_uri: str | None = None


def attribute_filter(ctx: StageContext, raw: dict[str, Any], hits: list[Hit] | None) -> list[Hit]:
    params: AttributeFilterParams = parse_params(AttributeFilterParams, ctx.stage_name, raw)
    if hits is None:  # first stage: the filter selects documents (no relevance, score 0)
        found: list[Hit] = []
        for collection in ctx.collections:
            where = ctx.where(collection, params.filters, None)
            found += [Hit(d, 0.0) for d in ctx.index.query(collection.collection_id, where, limit=params.limit)]
        return found[: params.limit]
    return ctx.matching(hits, params.filters)


def _sort_key(value: Any) -> tuple[int, Any]:
    """Numbers, then text, then anything else by its JSON; missing values are placed by the caller."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return 0, float(value)
    if isinstance(value, str):
        return 1, value
    return 2, json.dumps(value, sort_keys=True, default=str)


def _hit_sort_key(hit: Hit, path: str) -> tuple[int, Any]:
    return _sort_key(field_value(hit, path))


def sort_attribute(ctx: StageContext, raw: dict[str, Any], hits: list[Hit] | None) -> list[Hit]:
    params: SortParams = parse_params(SortParams, ctx.stage_name, raw)
    keys = params.sort_by or (
        [SortOption.model_validate({"field": params.field, "direction": params.direction})] if params.field else []
    )
    if not keys:
        raise BadRequestError(f"Stage '{ctx.stage_name}' needs 'field' or 'sort_by'", {"stage": ctx.stage_name})
    ordered = list(hits or [])
    for key in reversed(keys):  # stable sorts, least significant key first
        descending = key.direction.lower() == "desc"
        present = [h for h in ordered if field_value(h, key.field) is not None]
        missing = [h for h in ordered if field_value(h, key.field) is None]
        present.sort(key=partial(_hit_sort_key, path=key.field), reverse=descending)
        ordered = present + missing  # documents without the field go last either way
    return ordered


def limit(ctx: StageContext, raw: dict[str, Any], hits: list[Hit] | None) -> list[Hit]:
    params: LimitParams = parse_params(LimitParams, ctx.stage_name, raw)
    return list(hits or [])[params.offset : params.offset + params.limit]


def _identity(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def deduplicate(ctx: StageContext, raw: dict[str, Any], hits: list[Hit] | None) -> list[Hit]:
    """Keep the best-ranked hit of each value of a field; hits without the field all stay."""
    params: DeduplicateParams = parse_params(DeduplicateParams, ctx.stage_name, raw)
    seen: set[str] = set()
    kept = []
    for hit in hits or []:
        value = field_value(hit, params.field)
        if value is not None:
            identity = _identity(value)
            if identity in seen:
                continue
            seen.add(identity)
        kept.append(hit)
    return kept


def group_by(ctx: StageContext, raw: dict[str, Any], hits: list[Hit] | None) -> list[Hit]:
    """The best `max_per_group` hits of each group, groups ordered by their best hit
    (e.g. the best segment of each video with field `root_object_id`)."""
    params: GroupByParams = parse_params(GroupByParams, ctx.stage_name, raw)
    groups: dict[str, list[Hit]] = {}
    for hit in hits or []:
        value = field_value(hit, params.field)
        members = groups.setdefault(_identity(value), [])
        if len(members) < params.max_per_group:
            members.append(hit)
    ordered = list(groups.values())[: params.limit] if params.limit else list(groups.values())
    ctx.notes.update(groups=len(groups))
    return [hit for members in ordered for hit in members]


def hit_vectors(ctx: StageContext, hits: list[Hit], feature_uri: str | None) -> list[list[float] | None]:
    by_collection: dict[str, str] = {}
    for collection in ctx.collections:
        if feature_uri:
            targets = [t for t in feature_targets(ctx.collections, feature_uri) if t.collection is collection]
            if targets:
                by_collection[collection.collection_id] = targets[0].column
        elif collection.vector_indexes:
            by_collection[collection.collection_id] = collection.vector_indexes[0]["index"]["name"]
    stored: dict[tuple[str, str], list[float] | None] = {}
    for collection_id, column in by_collection.items():
        ids = [h.document.document_id for h in hits if h.document.collection_id == collection_id]
        for doc in ctx.index.get_many(collection_id, ids, with_vectors=True):
            stored[(collection_id, doc.document_id)] = doc.vectors.get(column)
    return [stored.get(h.key) for h in hits]


def mmr(ctx: StageContext, raw: dict[str, Any], hits: list[Hit] | None) -> list[Hit]:
    """Maximal marginal relevance: trade relevance against likeness to hits already picked."""
    params: MmrParams = parse_params(MmrParams, ctx.stage_name, raw)
    pool = list(hits or [])
    if len(pool) < 2:
        return pool
    raw_vectors = hit_vectors(ctx, pool, params.feature_uri)
    dims = max((len(v) for v in raw_vectors if v is not None), default=0)
    matrix = np.array([v if v is not None else [0.0] * dims for v in raw_vectors], dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix = (matrix / np.where(norms == 0, 1.0, norms)).astype(np.float32)
    scores = np.array([h.score for h in pool], dtype=np.float32)
    relevance = (scores - scores.min()) / ((scores.max() - scores.min()) or 1.0)
    wanted = min(params.top_k or len(pool), len(pool))
    picked: list[int] = []
    closest = np.full(len(pool), -np.inf, dtype=np.float32)  # each candidate's likeness to the picked set
    remaining = np.ones(len(pool), dtype=bool)
    while len(picked) < wanted:
        penalty = np.where(np.isfinite(closest), closest, 0.0)
        value = params.lambda_ * relevance - (1 - params.lambda_) * penalty
        value[~remaining] = -np.inf
        best = int(np.argmax(value))
        picked.append(best)
        remaining[best] = False
        closest = np.maximum(closest, matrix @ matrix[best])
    return [pool[i] for i in picked]
