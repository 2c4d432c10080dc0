"""Aggregating a collection's documents: the records read from LanceDB, the rest in the shared language.

The filters are pushed down to LanceDB, and each record holds only the fields the request
reads (as the index's SQL expressions), so a document's other fields never leave the index.
"""

from __future__ import annotations

from typing import Any

from strataflow.aggregation_language import aggregate, check, decode, stored_fields
from strataflow.errors import BadRequestError
from strataflow.index.store import DocumentIndex
from strataflow.schemas.documents import DocumentAggregationRequest
from strataflow.services.documents.crud import where_of
from strataflow.services.documents.model import resolve_field
from strataflow.store.tables import Collection

_ORDER = ("_created_at", "_document_id")  # oldest first, ties by id: the list's default order


def _records(index: DocumentIndex, collection: Collection, request: DocumentAggregationRequest) -> list[dict[str, Any]]:
    expressions = {"_document_id": "document_id", "_created_at": "created_at"}
    decoders: dict[str, tuple[str, bool]] = {}
    for position, field in enumerate(stored_fields(request)):
        target = resolve_field(field, collection)
        if field == request.unwind and not target.is_json:
            raise BadRequestError(f"Cannot unwind '{field}': it is not an array field", {"unwind": field})
        expressions[f"f{position}"] = target.json_text() if target.is_json else target.column
        decoders[field] = (f"f{position}", target.is_json)
    table = index.select(collection.collection_id, where_of(collection, request.filters), expressions)
    rows = sorted(table.to_pylist(), key=lambda r: tuple(str(r[k]) for k in _ORDER))
    return [{f: decode(row[c]) if is_json else row[c] for f, (c, is_json) in decoders.items()} for row in rows]


def aggregate_documents(
    index: DocumentIndex, collection: Collection, request: DocumentAggregationRequest
) -> dict[str, Any]:
    check(request)  # before reading anything
    records = _records(index, collection, request)
    return aggregate(records, request, len(records))
