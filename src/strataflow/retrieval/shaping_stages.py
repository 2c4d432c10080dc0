"""Stages that narrow, order or reshape the hits found so far."""

from __future__ import annotations

import json
from functools import partial
from typing import Any, Self

from pydantic import AliasChoices, Field, model_validator

from strataflow.errors import BadRequestError
from strataflow.retrieval.context import StageContext, StageParams, parse_params
from strataflow.retrieval.features import feature_targets
from strataflow.retrieval.results import Hit, field_value
from strataflow.schemas.common import SortOption

FIRST_STAGE_SCAN = 10_000  # a filter as the first stage lists at most this many documents


class AttributeFilterParams(StageParams):
    """`filters` (the documents filter language), or the SDK's StageParamsAttributeFilter shapes:
    `conditions` (boolean mode, the same language) or one condition as `field`, `operator`, `value`.

    The SDK's model always sends `field` (its default is the placeholder 'metadata.status'), so a
    condition given by `conditions` wins over `field`, as the SDK documents.
    """

    filters: dict[str, Any] | None = None
    conditions: dict[str, Any] | None = None
    field: str | None = None
    operator: str | None = None
    value: Any = None
    natural_language: str | None = None
    case_insensitive: bool = False
    limit: int = Field(default=1000, ge=1, le=FIRST_STAGE_SCAN)

    @model_validator(mode="after")
    def _one_filter(self) -> Self:
        if self.natural_language:
            raise ValueError(
                "natural_language needs a language model, and this server has none: "
                "give the filter as conditions, or as field, operator and value"
            )
        if self.case_insensitive:
            raise ValueError("case_insensitive is not supported: filters compare strings as stored")
        if self.filters is None:
            if self.conditions is not None:
                self.filters = self.conditions
            elif self.field and self.operator:
                self.filters = {"field": self.field, "operator": self.operator, "value": self.value}
            else:
                raise ValueError("give the filter as filters or conditions, or as field, operator and value")
        return self


class SortParams(StageParams):
    field: str | None = None
    direction: str = Field(default="desc", pattern="^(?i)(asc|desc)$")
    sort_by: list[SortOption] | None = None
    nulls_last: bool = True


class LimitParams(StageParams):
    limit: int = Field(ge=0, le=10_000)
    offset: int = Field(default=0, ge=0)


class DeduplicateParams(StageParams):
    field: str = "document_id"


class GroupByParams(StageParams):
    """The SDK's StageParamsGroupBy (`group_by_field`, also accepted as `field`)."""

    field: str = Field(
        default="source_object_id", min_length=1, validation_alias=AliasChoices("field", "group_by_field")
    )
    max_per_group: int = Field(default=10, ge=1, le=1000)
    output_mode: str = Field(default="all", pattern="^(first|all|flatten)$")
    limit: int | None = Field(default=None, ge=1)


def attribute_filter(ctx: StageContext, raw: dict[str, Any], hits: list[Hit] | None) -> list[Hit]:
    params: AttributeFilterParams = parse_params(AttributeFilterParams, ctx.stage_name, raw)
    assert params.filters is not None  # the model fills it from whichever shape was given
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
        # Documents without the field go last; with nulls_last false, where a null sorts (first
        # ascending, last descending), as the SDK documents.
        ordered = present + missing if params.nulls_last or descending else missing + present
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
    kept, groups = grouped(hits or [], params.field, params.max_per_group, params.limit, params.output_mode)
    ctx.notes.update(groups=groups)
    return kept


def grouped(
    hits: list[Hit], field: str, max_per_group: int, limit: int | None, output_mode: str
) -> tuple[list[Hit], int]:
    """The best `max_per_group` hits of each value of `field` (one with output_mode 'first'), of the
    first `limit` groups; and how many groups there were. Groups are ordered by their best hit and
    keep their members together ('all', 'first'), or the kept hits keep their ranking ('flatten')."""
    per_group = 1 if output_mode == "first" else max_per_group
    groups: dict[str, list[Hit]] = {}
    for hit in hits:
        members = groups.setdefault(_identity(field_value(hit, field)), [])
        if len(members) < per_group:
            members.append(hit)
    ordered = list(groups.values())[:limit] if limit else list(groups.values())
    kept = [hit for members in ordered for hit in members]
    if output_mode == "flatten":
        chosen = {id(hit) for hit in kept}
        kept = [hit for hit in hits if id(hit) in chosen]
    return kept, len(groups)


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
