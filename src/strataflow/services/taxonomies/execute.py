"""execute: a dry run of a taxonomy over documents given in the request; nothing is written."""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy.orm import Session

from strataflow.index.store import DocumentIndex
from strataflow.schemas.taxonomies import ExecuteTaxonomyRequest
from strataflow.services.collections.schema import SYSTEM_FIELDS
from strataflow.services.taxonomies import enrichment
from strataflow.services.taxonomies.crud import get_taxonomy, version_config
from strataflow.services.taxonomies.join import Subject, safe_match
from strataflow.services.taxonomies.plans import join_plan
from strataflow.services.tenancy.scope import NamespaceScope


def execute_taxonomy(
    session: Session,
    index: DocumentIndex,
    scope: NamespaceScope,
    identifier: str,
    request: ExecuteTaxonomyRequest,
    version: int | None = None,
) -> dict[str, Any]:
    """JoinResponse: each document as it would be enriched, and a TaxonomyMatch per assignment."""
    taxonomy = get_taxonomy(session, scope, identifier)
    config, number = version_config(session, taxonomy, version)
    plan = join_plan(session, taxonomy, config, number)
    results, matches = [], []
    stats = {"processed_docs": 0, "batches": 1 if request.source_documents else 0, "errors": 0, "enriched": 0}
    for raw in request.source_documents:
        document = copy.deepcopy(raw)
        payload = {k: v for k, v in document.items() if k not in SYSTEM_FIELDS}
        internal = dict(document.get("_internal") or {})
        found, error = safe_match(plan, index, Subject(document.get("document_id"), payload, payload))
        fields = enrichment.apply(payload, internal, plan, found, error)
        stats["processed_docs"] += 1
        stats["enriched"] += 1 if found else 0
        stats["errors"] += 1 if error else 0
        results.append(
            {
                **{k: v for k, v in document.items() if k in SYSTEM_FIELDS},
                **payload,
                "_internal": internal,
                **({"error": error} if error else {}),
            }
        )
        matches += [enrichment.taxonomy_match(plan, document.get("document_id"), m, fields) for m in found]
    return {"stats": stats, "results": results, "matches": matches}
