"""taxonomy_enrich: enrich the hits of a search with a taxonomy's matches, writing nothing.

The join itself belongs to the taxonomies service; the execution is handed one enricher per
taxonomy the stages name (`StageContext.taxonomies`), loaded before the first stage runs.
With `when` (attribute_filter's filter language), only the hits whose stored documents match
it are enriched; the rest pass through unchanged.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from strataflow.errors import BadRequestError
from strataflow.retrieval.context import StageContext, StageParams, parse_params
from strataflow.retrieval.results import Hit


class EnrichFieldParams(StageParams):
    field_path: str = Field(min_length=1)
    target_field: str | None = None
    merge_mode: str = "replace"


class TaxonomyEnrichParams(StageParams):
    """The SDK's StageParamsTaxonomyEnrich."""

    taxonomy_id: str = Field(min_length=1)
    fields: list[EnrichFieldParams] | None = None
    top_k: int = Field(default=3, ge=1, le=50)
    min_score: float = Field(default=0.0, ge=0.0, le=1.0)
    when: dict[str, Any] | None = None


def taxonomy_enrich(ctx: StageContext, raw: dict[str, Any], hits: list[Hit] | None) -> list[Hit]:
    params: TaxonomyEnrichParams = parse_params(TaxonomyEnrichParams, ctx.stage_name, raw)
    if hits is None:
        raise BadRequestError(
            "taxonomy_enrich enriches the hits of an earlier stage; put a search stage first", {"stage": ctx.stage_name}
        )
    enricher = ctx.taxonomies.get(params.taxonomy_id)
    if enricher is None:
        raise BadRequestError(
            f"Taxonomy '{params.taxonomy_id}' not found in this namespace", {"taxonomy_id": params.taxonomy_id}
        )
    # `when`: only the hits whose stored documents match are enriched; the others pass unchanged.
    chosen = hits if params.when is None else ctx.matching(hits, params.when)
    counts = enricher([h.document for h in chosen], params.model_dump())
    ctx.notes.update(counts)
    return hits
