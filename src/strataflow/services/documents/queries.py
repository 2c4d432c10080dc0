"""Listing documents (filters, search, sort, pages, groups) and aggregating them."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pyarrow.compute as pc

from strataflow.aggregation_language import decode
from strataflow.errors import BadRequestError
from strataflow.index.filters import Target, sql_string
from strataflow.index.records import StoredDocument
from strataflow.index.store import DocumentIndex
from strataflow.schemas.common import SortOption
from strataflow.schemas.documents import DistinctValuesRequest, ListDocumentsRequest
from strataflow.services.documents.crud import where_of
from strataflow.services.documents.model import resolve_field
from strataflow.services.documents.partitions import (
    PartitionCursor,
    encode_partition_cursor,
    keyset_clause,
    partition_clause,
    resolve_partition,
)
from strataflow.store.pagination import PageRequest, encode_cursor
from strataflow.store.tables import Collection

MAX_GROUPED_DOCUMENTS = 10_000
# The most values one distinct answer holds (the request's own limit may only lower it).
MAX_DISTINCT_VALUES = 10_000
DEFAULT_ORDER = [("created_at", True), ("document_id", True)]


@dataclass
class DocumentPage:
    documents: list[StoredDocument]
    pagination: dict[str, Any]
    total: int | None
    groups: list[dict[str, Any]] | None = None


def _search_clause(search: str) -> str:
    needle = json.dumps(search.lower(), ensure_ascii=False)[1:-1]
    pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return (
        f"(lower(json_extract(payload, '$')) LIKE {sql_string(pattern)} ESCAPE '\\' "
        f"OR lower(document_id) LIKE {sql_string(pattern)} ESCAPE '\\')"
    )


def list_where(collection: Collection, request: ListDocumentsRequest) -> str | None:
    """The filter a list request's `filters` and `search` make together."""
    return _and(where_of(collection, request.filters), _search_clause(request.search) if request.search else None)


def _sorted_ids(
    index: DocumentIndex, collection: Collection, where: str | None, target: Target, ascending: bool
) -> list[str]:
    """Ids of all matches ordered by a payload field: numbers first by value, then other values by text."""
    keys = index.select(
        collection.collection_id,
        where,
        {"document_id": "document_id", "number": target.number(), "text": target.json_text()},
    )
    order = "ascending" if ascending else "descending"
    indices = pc.sort_indices(
        keys, sort_keys=[("number", order, "at_end"), ("text", order, "at_end"), ("document_id", "ascending", "at_end")]
    )
    return [str(i) for i in keys.column("document_id").take(indices).to_pylist()]


def pagination_of(start: int, limit: int, has_more: bool, total: int | None) -> dict[str, Any]:
    page = start // limit + 1
    return {
        "total": total,
        "page": page,
        "page_size": limit,
        "total_pages": -(-total // limit) if total is not None else None,
        "next_page": str(page + 1) if has_more else None,
        "previous_page": str(page - 1) if page > 1 else None,
        "next_cursor": encode_cursor(start + limit) if has_more else None,
    }


def list_documents(
    index: DocumentIndex, collection: Collection, request: ListDocumentsRequest, page: PageRequest, with_vectors: bool
) -> DocumentPage:
    where = list_where(collection, request)
    partition = resolve_partition(request.partition, page.cursor)
    if partition is not None:
        return _partition_page(index, collection, where, partition, request, page, with_vectors)
    total = index.count(collection.collection_id, where) if page.include_total else None
    if request.group_by:
        return _grouped(index, collection, where, request.group_by, page, with_vectors, total)
    start, limit = page.start, page.limit
    sort: SortOption | None = request.sort
    target = resolve_field(sort.field, collection) if sort else None
    if target is None or not target.is_json:
        order = [(target.column, sort.direction.lower() == "asc")] if target and sort else []
        order += [o for o in DEFAULT_ORDER if not order or o[0] != order[0][0]]
        docs = index.query(
            collection.collection_id, where, order=order, offset=start, limit=limit + 1, with_vectors=with_vectors
        )
        return DocumentPage(docs[:limit], pagination_of(start, limit, len(docs) > limit, total), total)
    assert sort is not None
    ids = _sorted_ids(index, collection, where, target, sort.direction.lower() == "asc")
    wanted = ids[start : start + limit]
    found = {d.document_id: d for d in index.get_many(collection.collection_id, wanted, with_vectors)}
    docs = [found[i] for i in wanted if i in found]
    return DocumentPage(docs, pagination_of(start, limit, len(ids) > start + limit, total), total)


def _partition_page(
    index: DocumentIndex,
    collection: Collection,
    where: str | None,
    partition: PartitionCursor,
    request: ListDocumentsRequest,
    page: PageRequest,
    with_vectors: bool,
) -> DocumentPage:
    """One page of one partition, in document id order, after the cursor's last id."""
    if request.sort is not None or request.group_by:
        raise BadRequestError(
            "A partition is read in document id order: it takes neither sort nor group_by",
            {"partition": partition.partition.model_dump()},
        )
    where = _and(where, partition_clause(partition.partition))
    total = index.count(collection.collection_id, where) if page.include_total else None
    where = _and(where, keyset_clause(partition))
    offset = page.offset if partition.after is None else 0  # a cursor page starts right after its key
    docs = index.query(
        collection.collection_id,
        where,
        order=[("document_id", True)],
        offset=offset,
        limit=page.limit + 1,
        with_vectors=with_vectors,
    )
    docs, more = docs[: page.limit], len(docs) > page.limit
    pagination = {
        "total": total,
        "page": None,
        "page_size": page.limit,
        "total_pages": -(-total // page.limit) if total is not None else None,
        "next_page": None,
        "previous_page": None,
        "next_cursor": encode_partition_cursor(partition.partition, docs[-1].document_id) if more else None,
    }
    return DocumentPage(docs, pagination, total)


def _and(*clauses: str | None) -> str | None:
    return " AND ".join(f"({c})" for c in clauses if c) or None


def _grouped(
    index: DocumentIndex,
    collection: Collection,
    where: str | None,
    group_by: str,
    page: PageRequest,
    with_vectors: bool,
    total: int | None,
) -> DocumentPage:
    """Groups of documents sharing a field's value; pages count groups, not documents."""
    target = resolve_field(group_by, collection)
    key = target.json_text() if target.is_json else target.column
    rows = index.select(collection.collection_id, where, {"document_id": "document_id", "key": key}).to_pylist()
    if len(rows) > MAX_GROUPED_DOCUMENTS:
        raise BadRequestError(
            f"group_by works on at most {MAX_GROUPED_DOCUMENTS} documents; add filters",
            {"matching_documents": len(rows)},
        )
    members: dict[str, list[str]] = {}
    for row in rows:
        members.setdefault(row["key"] if row["key"] is not None else "null", []).append(row["document_id"])
    keys = sorted(members)
    chosen = keys[page.start : page.start + page.limit]
    wanted = [i for k in chosen for i in members[k]]
    found = {d.document_id: d for d in index.get_many(collection.collection_id, wanted, with_vectors)}
    groups = [
        {
            "group_key": decode(k) if target.is_json else k,
            "documents": [found[i] for i in members[k] if i in found],
            "count": len(members[k]),
        }
        for k in chosen
    ]
    pagination = pagination_of(page.start, page.limit, len(keys) > page.start + page.limit, total)
    return DocumentPage([], pagination, total, groups)


def value_counts(index: DocumentIndex, collection: Collection, where: str | None, field: str) -> Counter[str]:
    """How many matching documents hold each value of a field, keyed by the value's JSON text
    (so lists and objects count too); documents without the field are left out."""
    target = resolve_field(field, collection)
    key = target.json_text() if target.is_json else target.column
    where = " AND ".join(f"({c})" for c in (where, f"{key} IS NOT NULL") if c)
    texts = index.select(collection.collection_id, where, {"key": key}).column("key").to_pylist()
    return Counter(t if target.is_json else json.dumps(t, default=str) for t in texts)


def most_common(counts: Counter[str]) -> list[tuple[Any, int]]:
    """The values of `value_counts` decoded, most common first, ties by value."""
    # A JSON null stored in the payload extracts as the text 'null': missing, as far as the caller is concerned.
    values = [(decode(t), n) for t, n in counts.items() if decode(t) is not None]
    return sorted(values, key=lambda vn: (-vn[1], json.dumps(vn[0], sort_keys=True, default=str)))


def distinct_values(index: DocumentIndex, collection: Collection, request: DistinctValuesRequest) -> dict[str, Any]:
    """A field's distinct non-null values among the documents matching the filters, most common first."""
    values = most_common(value_counts(index, collection, where_of(collection, request.filters), request.field))
    cap = min(request.limit or MAX_DISTINCT_VALUES, MAX_DISTINCT_VALUES)
    query_info: dict[str, Any] = {}
    if request.limit is None and len(values) > cap:
        query_info = {
            "truncated": True,
            "reason": f"more than {MAX_DISTINCT_VALUES} distinct values",
            "warning": "Only the most common values are listed; add filters to narrow the field's values.",
        }
    kept = values[:cap]
    return {
        "field": request.field,
        "values": [{"value": v, "count": n} for v, n in kept],
        "total_distinct": len(kept),
        "query_info": query_info,
    }
