"""document_enrich: join fields from documents of another collection onto the hits, writing nothing.

For each hit, the value at `source_field` (default the hit's `source_object_id`) is looked up in
the target collection's `target_field` (default `document_id`); the matching document's
`fields_to_merge` (all its payload when none are named) are copied onto the hit, under
`output_field` when given, else beside the hit's own fields (existing fields are not overwritten
unless `strategy` is "replace"). With `allow_missing` false a hit without a match is dropped.
With `when` (attribute_filter's filter language, on the hits' stored fields) only the hits that
match it are joined; the others pass through unchanged.
The target collection is resolved before the run (`StageContext.extra_collections`).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from strataflow.errors import BadRequestError
from strataflow.paths import value_at
from strataflow.retrieval.context import StageContext, StageParams, parse_params
from strataflow.retrieval.results import Hit, field_value
from strataflow.services.documents.crud import where_of

MAX_LOOKUPS = 10_000  # distinct join values one stage looks up


class DocumentEnrichParams(StageParams):
    """The SDK's StageParamsDocumentEnrich (the retriever_* join modes are not supported)."""

    target_collection_id: str = Field(min_length=1)
    source_field: str = "source_object_id"
    target_field: str = "document_id"
    fields_to_merge: list[str] | None = None
    output_field: str | None = None
    strategy: str = Field(default="enrich", pattern="^(?i)(enrich|replace)$")
    allow_missing: bool = True
    retriever_id: str | None = None
    when: dict[str, Any] | None = None


def _picked(payload: dict[str, Any], names: list[str] | None) -> dict[str, Any]:
    if not names:
        return dict(payload)
    picked: dict[str, Any] = {}
    for name in names:
        value = value_at(payload, name)
        if value is not None:
            picked[name] = value
    return picked


def document_enrich(ctx: StageContext, raw: dict[str, Any], hits: list[Hit] | None) -> list[Hit]:
    params: DocumentEnrichParams = parse_params(DocumentEnrichParams, ctx.stage_name, raw)
    if params.retriever_id:
        raise BadRequestError(
            "document_enrich joins by field only: 'retriever_id' is not supported", {"stage": ctx.stage_name}
        )
    if hits is None:
        raise BadRequestError(
            "document_enrich enriches the hits of an earlier stage; put a search stage first", {"stage": ctx.stage_name}
        )
    target = ctx.extra_collections.get(params.target_collection_id)
    if target is None:
        raise BadRequestError(
            f"Collection '{params.target_collection_id}' not found in this namespace",
            {"target_collection_id": params.target_collection_id},
        )
    # `when`: only these hits are joined; the others pass through unchanged, whatever allow_missing says.
    chosen = {h.key for h in (hits if params.when is None else ctx.matching(hits, params.when))}
    keys = {
        json.dumps(v, default=str): v
        for h in hits
        if h.key in chosen and (v := field_value(h, params.source_field)) is not None
    }
    values = list(keys.values())[:MAX_LOOKUPS]
    found: dict[str, dict[str, Any]] = {}
    if values:
        where = where_of(target, {"AND": [{"field": params.target_field, "operator": "in", "value": values}]})
        for doc in ctx.index.query(target.collection_id, where, limit=len(values) * 4):
            joined = Hit(doc, 0.0)
            key = json.dumps(field_value(joined, params.target_field), default=str)
            found.setdefault(key, _picked(doc.payload, params.fields_to_merge))
    kept: list[Hit] = []
    matched = 0
    for hit in hits:
        if hit.key not in chosen:
            kept.append(hit)
            continue
        value = field_value(hit, params.source_field)
        fields = found.get(json.dumps(value, default=str)) if value is not None else None
        if fields is None:
            if params.allow_missing:
                kept.append(hit)
            continue
        matched += 1
        payload = hit.document.payload
        if params.output_field:
            payload[params.output_field] = fields
        else:
            for name, field in fields.items():
                if params.strategy.lower() == "replace" or name not in payload:
                    payload[name] = field
        kept.append(hit)
    ctx.notes.update(enriched=matched, unmatched=len(chosen) - matched, skipped_by_when=len(hits) - len(chosen))
    return kept
