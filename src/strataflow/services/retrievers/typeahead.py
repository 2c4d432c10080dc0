"""Typeahead: prefix suggestions for a search box, from three namespace-scoped sources.

Values of named document fields (with how many documents hold each), collection names, and the
queries of recent executions. A source that cannot answer (a field no collection has, say) is
left out and named in `warnings`; the request still answers.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.errors import BadRequestError, StrataflowError
from strataflow.index.store import DocumentIndex
from strataflow.paths import value_at
from strataflow.services.documents.crud import where_of
from strataflow.services.retrievers.history import query_summary
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.tables import Collection, RetrieverExecution

MAX_FIELDS = 5
SCAN_PER_COLLECTION = 2000  # matching documents read per field and collection to count values
RECENT = 500  # recent executions looked at for past queries


def _field_values(index: DocumentIndex, collections: list[Collection], field: str, prefix: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for collection in collections:
        if not index.has_table(collection.collection_id):
            continue
        where = where_of(collection, {"AND": [{"field": field, "operator": "starts_with", "value": prefix}]})
        for doc in index.query(collection.collection_id, where, limit=SCAN_PER_COLLECTION):
            value = value_at(doc.payload, field)
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str) and item.lower().startswith(prefix.lower()):
                    counts[item] += 1
    return counts


def typeahead(
    session: Session, index: DocumentIndex, scope: NamespaceScope, prefix: str, fields: str | None, limit: int
) -> dict[str, Any]:
    if not prefix.strip():
        raise BadRequestError("q must not be blank")
    names = [f.strip() for f in (fields or "").split(",") if f.strip()]
    if len(names) > MAX_FIELDS:
        raise BadRequestError(f"At most {MAX_FIELDS} fields are consulted", {"fields": names})
    warnings: list[str] = []
    collections = list(session.scalars(select(Collection).where(Collection.namespace_id == scope.namespace_id)))
    values: list[dict[str, Any]] = []
    for field in names:
        try:
            counts = _field_values(index, collections, field, prefix)
        except StrataflowError as exc:
            warnings.append(f"field '{field}': {exc.message}")
            continue
        values += [{"field": field, "value": v, "count": c} for v, c in counts.most_common(limit)]
    lowered = prefix.lower()
    matching = [c for c in collections if c.collection_name.lower().startswith(lowered)][:limit]
    recent: list[str] = []
    rows = session.scalars(
        select(RetrieverExecution.inputs)
        .where(RetrieverExecution.namespace_id == scope.namespace_id)
        .order_by(RetrieverExecution.created_at.desc())
        .limit(RECENT)
    )
    for inputs in rows:
        text = query_summary(inputs)
        if text and text.lower().startswith(lowered) and text not in recent:
            recent.append(text)
        if len(recent) == limit:
            break
    suggestions = list(dict.fromkeys([v["value"] for v in values] + recent + [c.collection_name for c in matching]))
    return {
        "query": prefix,
        "suggestions": suggestions[:limit],
        "values": values,
        "collections": [{"collection_id": c.collection_id, "collection_name": c.collection_name} for c in matching],
        "recent_searches": recent,
        "warnings": warnings,
    }
