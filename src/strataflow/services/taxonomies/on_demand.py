"""On demand: the enrichers a retriever's taxonomy_enrich stages use, loaded before it runs.

An enricher joins hit documents (copies read for this execution) to the taxonomy's nodes and
applies the matches in memory: the search answer carries them, nothing is stored.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy.orm import Session

from strataflow.errors import NotFoundError
from strataflow.index.records import StoredDocument
from strataflow.index.store import DocumentIndex
from strataflow.retrieval.context import HitEnricher
from strataflow.schemas.taxonomies import EnrichmentField
from strataflow.services.taxonomies import enrichment
from strataflow.services.taxonomies.crud import get_taxonomy
from strataflow.services.taxonomies.join import JoinPlan, Subject, safe_match
from strataflow.services.taxonomies.plans import join_plan
from strataflow.services.tenancy.scope import NamespaceScope


def _named_taxonomies(stages: list[dict[str, Any]]) -> list[str]:
    names = []
    for stage in stages:
        if stage.get("config", {}).get("stage_id") == "taxonomy_enrich":
            identifier = (stage["config"].get("parameters") or {}).get("taxonomy_id")
            if isinstance(identifier, str) and "{{" not in identifier:
                names.append(identifier)
    return names


def hit_enrichers(
    session: Session, index: DocumentIndex, scope: NamespaceScope, stages: list[dict[str, Any]]
) -> dict[str, HitEnricher]:
    """One enricher per taxonomy the stages name; a name that is no taxonomy is left out
    (the stage then answers 400 naming it)."""
    enrichers: dict[str, HitEnricher] = {}
    for identifier in _named_taxonomies(stages):
        try:
            taxonomy = get_taxonomy(session, scope, identifier)
        except NotFoundError:
            continue
        enrichers[identifier] = _enricher(index, join_plan(session, taxonomy, dict(taxonomy.config), taxonomy.version))
    return enrichers


def _enricher(index: DocumentIndex, base: JoinPlan) -> HitEnricher:
    needs_vectors = any(m.source_type == "vector" for s in base.searches for m in s.mappings)

    def enrich(documents: list[StoredDocument], params: dict[str, Any]) -> dict[str, int]:
        plan = dataclasses.replace(base, top_k=int(params["top_k"]), min_score=float(params["min_score"]))
        if params.get("fields") is not None:
            fields = [EnrichmentField.model_validate(f) for f in params["fields"]]
            plan.searches = [dataclasses.replace(s, fields=fields) for s in plan.searches]
        vectors = _vectors(index, documents) if needs_vectors else {}
        enriched = 0
        for doc in documents:
            subject = Subject(doc.document_id, doc.payload, vectors.get((doc.collection_id, doc.document_id), {}))
            matches, error = safe_match(plan, index, subject)
            enrichment.apply(doc.payload, doc.internal, plan, matches, error)
            enriched += 1 if matches else 0
        return {"documents_enriched": enriched}

    return enrich


def _vectors(index: DocumentIndex, documents: list[StoredDocument]) -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for collection_id in {d.collection_id for d in documents}:
        ids = [d.document_id for d in documents if d.collection_id == collection_id]
        for doc in index.get_many(collection_id, ids, with_vectors=True):
            found[(collection_id, doc.document_id)] = dict(doc.vectors)
    return found
