"""What every stage of one execution sees: the collections, the index, the query embedder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic import ValidationError as PydanticValidationError

from strataflow.errors import ValidationError
from strataflow.index.records import StoredDocument
from strataflow.index.store import DocumentIndex, quote_ids
from strataflow.retrieval.features import QueryEmbedder
from strataflow.retrieval.results import Hit
from strataflow.services.documents.crud import where_of
from strataflow.store.tables import Collection

# Enriches hit documents in place (copies read for this execution; nothing is written) with
# parameters {top_k, min_score, fields}; returns counts for the stage statistics.
HitEnricher = Callable[[list[StoredDocument], dict[str, Any]], dict[str, int]]
SDK_NULL = "null"  # what the SDK's typed stage models send for an optional string left unset


class StageParams(BaseModel):
    """Base of stage parameter models: unknown keys are ignored, as for request bodies.

    The SDK's typed stage models (StageParamsDocumentEnrich, StageParamsSample, ...) give their
    unset optional strings the default text 'null', which `to_dict()` sends as it is. Such a
    parameter means "not given": it is dropped, so the stage's own default applies.
    """

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _sdk_null_is_unset(cls, raw: Any) -> Any:
        if isinstance(raw, dict):
            return {key: value for key, value in raw.items() if value != SDK_NULL}
        return raw


@dataclass
class StageContext:
    index: DocumentIndex
    collections: list[Collection]
    embedder: QueryEmbedder
    stage_name: str = ""
    # taxonomy_enrich: taxonomy id or name -> the enricher of hit documents (loaded before the run).
    taxonomies: dict[str, HitEnricher] = field(default_factory=dict)
    # What a stage reports about itself (searches run, skipped, candidates seen) for the statistics.
    notes: dict[str, Any] = field(default_factory=dict)
    # Collections a stage joins from (document_enrich), by id and by name, resolved before the run.
    extra_collections: dict[str, Collection] = field(default_factory=dict)
    # What a stage answers beside the hits (aggregate's rows), put in the response under the stage's name.
    outputs: dict[str, Any] = field(default_factory=dict)

    def where(self, collection: Collection, filters: dict[str, Any] | None, within: list[Hit] | None) -> str | None:
        """SQL for a stage's filters in one collection, narrowed to the hits of earlier stages if any."""
        clauses = [where_of(collection, filters)]
        if within is not None:
            ids = [h.document.document_id for h in within if h.document.collection_id == collection.collection_id]
            clauses.append(f"document_id IN ({quote_ids(ids)})" if ids else "FALSE")
        parts = [c for c in clauses if c]
        return " AND ".join(f"({c})" for c in parts) or None

    def matching(self, hits: list[Hit], filters: dict[str, Any]) -> list[Hit]:
        """The hits whose stored documents match `filters` (the filter language of attribute_filter)."""
        keep: set[tuple[str, str]] = set()
        for collection in self.collections:
            where = self.where(collection, filters, hits)
            if where == "(FALSE)":
                continue
            ids = self.index.select(collection.collection_id, where, {"document_id": "document_id"})
            keep |= {(collection.collection_id, str(i)) for i in ids.column("document_id").to_pylist()}
        return [h for h in hits if h.key in keep]


def parse_params(model: type[StageParams], stage_name: str, raw: dict[str, Any]) -> Any:
    """Stage parameters through their model; problems are a 422 naming the stage and field."""
    try:
        return model.model_validate(raw)
    except PydanticValidationError as exc:
        problems = [
            {
                "type": e.get("type"),
                "location": ".".join(["stages", stage_name, "parameters", *map(str, e.get("loc", ()))]),
                "message": e.get("msg"),
            }
            for e in exc.errors()
        ]
        raise ValidationError(
            f"Invalid parameters for stage '{stage_name}': {problems[0]['location']}: {problems[0]['message']}",
            {"validation_errors": problems},
        ) from None
