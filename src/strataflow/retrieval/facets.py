"""Facets of a `feature_search`: how many documents hold each value of a field, for a search UI's
"Category: Sports (45), Music (23)".

The counts are over every document the stage's searches could return, not only the page: the
documents of its collections matching any of its searches' filters (and, after earlier stages,
among their hits). They are exact: counted from the index, not estimated, so `exact` changes
nothing. Each field lists its `limit` most common values, ties by value.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import BaseModel, Field

from strataflow.retrieval.context import StageContext
from strataflow.retrieval.results import Hit
from strataflow.services.documents.queries import most_common, value_counts
from strataflow.store.tables import Collection


class FacetField(BaseModel):
    key: str = Field(min_length=1)
    limit: int = Field(default=10, ge=1, le=1000)
    exact: bool = False


def _where_any(
    ctx: StageContext, collection: Collection, filters: list[dict[str, Any] | None], hits: list[Hit] | None
) -> str | None:
    """The documents any of the searches could return: their filters ORed (one without filters: all)."""
    clauses = [ctx.where(collection, f, hits) for f in filters]
    if any(c is None for c in clauses):
        return None
    return " OR ".join(f"({c})" for c in dict.fromkeys(c for c in clauses if c))


def facet_counts(
    ctx: StageContext, fields: list[FacetField], filters: list[dict[str, Any] | None], hits: list[Hit] | None
) -> list[dict[str, Any]]:
    """One FacetResult per field: `{key, values: [{value, count}], total_distinct}`."""
    wheres = {c.collection_id: _where_any(ctx, c, filters, hits) for c in ctx.collections}
    results = []
    for field in fields:
        counts: Counter[str] = Counter()
        for collection in ctx.collections:
            if ctx.index.has_table(collection.collection_id):
                counts += value_counts(ctx.index, collection, wheres[collection.collection_id], field.key)
        values = most_common(counts)
        results.append(
            {
                "key": field.key,
                "values": [{"value": v, "count": n} for v, n in values[: field.limit]],
                "total_distinct": len(values),
            }
        )
    return results
