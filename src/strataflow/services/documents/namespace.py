"""Documents across every collection of a namespace: find one by id, fetch many, list them all.

Document ids are unique across collections (`doc_` + random or derived hex), so an id alone names
one document; finding it means asking each of the namespace's collections in turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.errors import BadRequestError, NotFoundError, not_found
from strataflow.index.records import StoredDocument
from strataflow.index.store import DocumentIndex, quote_ids
from strataflow.schemas.documents import NamespaceListDocumentsRequest
from strataflow.services.documents.model import resolve_field
from strataflow.services.documents.queries import DEFAULT_ORDER, list_where, pagination_of
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.pagination import PageRequest
from strataflow.store.tables import Collection


def namespace_collections(session: Session, scope: NamespaceScope) -> list[Collection]:
    """The namespace's collections, oldest first (ties by id): the same order on every call."""
    return list(
        session.scalars(
            select(Collection)
            .where(Collection.namespace_id == scope.namespace_id)
            .order_by(Collection.created_at, Collection.collection_id)
        )
    )


def _with_documents(index: DocumentIndex, collections: list[Collection]) -> list[Collection]:
    # A collection that never wrote a document has no table yet; it holds nothing to find.
    return [c for c in collections if index.has_table(c.collection_id)]


def collection_of_document(
    session: Session, index: DocumentIndex, scope: NamespaceScope, document_id: str
) -> Collection:
    """The collection of this namespace holding the document; another namespace's is a 404 too."""
    for collection in _with_documents(index, namespace_collections(session, scope)):
        if index.count(collection.collection_id, f"document_id IN ({quote_ids([document_id])})"):
            return collection
    raise not_found("Document", document_id)


def get_documents(
    session: Session, index: DocumentIndex, scope: NamespaceScope, document_ids: list[str]
) -> tuple[list[StoredDocument], list[str]]:
    """The documents among `document_ids` (in the order asked, each once) and the ids not found."""
    wanted = list(dict.fromkeys(document_ids))
    found: dict[str, StoredDocument] = {}
    for collection in _with_documents(index, namespace_collections(session, scope)):
        remaining = [i for i in wanted if i not in found]
        if not remaining:
            break
        found.update((d.document_id, d) for d in index.get_many(collection.collection_id, remaining))
    return [found[i] for i in wanted if i in found], [i for i in wanted if i not in found]


@dataclass
class NamespacePage:
    documents: list[StoredDocument]
    pagination: dict[str, Any]
    total: int | None
    unknown_collection_ids: list[str]


def _refuse_unsupported(request: NamespaceListDocumentsRequest) -> None:
    """Fields of the contract this list cannot honour yet: refused, never silently dropped."""
    asked = {
        "group_by": request.group_by,
        "partition": request.partition,
        "expand": request.expand,
        "return_vector_names": request.return_vector_names,
    }
    refused = sorted(name for name, value in asked.items() if value)
    if refused:
        raise BadRequestError(
            f"The namespace-wide list does not support {', '.join(refused)}; use the collection's list",
            {"unsupported": refused},
        )


def chosen_collections(
    session: Session, scope: NamespaceScope, wanted: list[str] | None
) -> tuple[list[Collection], list[str]]:
    """The collections a list reads (all of the namespace's, or those named by id or name) and the
    names that matched none. Naming only unknown collections is a 404: a typo must not look empty."""
    collections = namespace_collections(session, scope)
    if not wanted:
        return collections, []
    by_key = {key: c for c in collections for key in (c.collection_id, c.collection_name)}
    unknown = [w for w in dict.fromkeys(wanted) if w not in by_key]
    chosen = {by_key[w].collection_id: by_key[w] for w in wanted if w in by_key}
    if not chosen:
        raise NotFoundError("None of the requested collections exists in this namespace", {"collection_ids": unknown})
    return [c for c in collections if c.collection_id in chosen], unknown


@dataclass(frozen=True)
class _MergeOrder:
    """How a namespace list orders documents of several collections."""

    columns: dict[str, str]  # key name -> SQL expression: what each collection contributes
    sort_keys: list[tuple[str, str, str]]  # the pyarrow sort of the merged keys
    store_order: list[tuple[str, bool]] | None  # the same order for the store to apply, when it can (columns)


def _merge_order(request: NamespaceListDocumentsRequest, collection: Collection) -> _MergeOrder:
    """Same order as the collection's list (queries.list_documents): a column sort then created_at
    then document_id; a payload field's numbers by value, then other values by text, then id.
    Nulls last, as the store puts them."""
    sort = request.sort
    target = resolve_field(sort.field, collection) if sort else None
    if sort is None or target is None or not target.is_json:
        order = [(target.column, sort.direction.lower() == "asc")] if target and sort else []
        order += [o for o in DEFAULT_ORDER if not order or o[0] != order[0][0]]
        columns = {f"k{i}": column for i, (column, _) in enumerate(order)}
        keys = [(f"k{i}", "ascending" if asc else "descending", "at_end") for i, (_, asc) in enumerate(order)]
        return _MergeOrder({"document_id": "document_id", **columns}, keys, order)
    direction = "ascending" if sort.direction.lower() == "asc" else "descending"
    columns = {"document_id": "document_id", "number": target.number(), "text": target.json_text()}
    keys = [("number", direction, "at_end"), ("text", direction, "at_end"), ("document_id", "ascending", "at_end")]
    return _MergeOrder(columns, keys, None)


def list_namespace_documents(
    session: Session,
    index: DocumentIndex,
    scope: NamespaceScope,
    request: NamespaceListDocumentsRequest,
    page: PageRequest,
    with_vectors: bool,
) -> NamespacePage:
    """One page of the documents of several collections, as if they were one collection.

    Paging is a merge: each collection contributes the sort keys of its matching documents (never
    their payloads), the keys of all collections are sorted together, and the page is the slice
    [start, start + limit) of that one order, whose documents are then fetched by id. So a page
    is the same whichever collection a document sits in, a sort is global rather than per
    collection, and an offset or cursor means the same position on every call. When the order is
    on columns, each collection's store returns only its first start + limit + 1 keys (no more can
    reach the page); a payload field sort reads every match's key, as the collection list does.
    """
    _refuse_unsupported(request)
    collections, unknown = chosen_collections(session, scope, request.collection_ids)
    start, limit = page.start, page.limit
    tables: list[pa.Table] = []
    sort_keys: list[tuple[str, str, str]] = []
    counts: list[int] = []
    for collection in _with_documents(index, collections):
        where = list_where(collection, request)
        merge = _merge_order(request, collection)
        sort_keys = merge.sort_keys
        bounded = merge.store_order is not None
        keys = index.select(
            collection.collection_id,
            where,
            merge.columns,
            order=merge.store_order,
            limit=start + limit + 1 if bounded else None,
        )
        owner = pa.array([collection.collection_id] * keys.num_rows, pa.string())
        tables.append(keys.append_column("collection_id", owner))
        if page.include_total:
            counts.append(index.count(collection.collection_id, where))
    total = sum(counts) if page.include_total else None
    merged = pa.concat_tables(tables, promote_options="permissive") if tables else None
    if merged is None or merged.num_rows == 0:
        return NamespacePage([], pagination_of(start, limit, False, total), total, unknown)
    ordered = merged.take(pc.sort_indices(merged, sort_keys=sort_keys))
    window = ordered.slice(start, limit).select(["document_id", "collection_id"]).to_pylist()
    documents = _fetch(index, window, with_vectors)
    return NamespacePage(
        documents, pagination_of(start, limit, ordered.num_rows > start + limit, total), total, unknown
    )


def _fetch(index: DocumentIndex, window: list[dict[str, str]], with_vectors: bool) -> list[StoredDocument]:
    """The page's documents, one read per collection, in the page's order."""
    per_collection: dict[str, list[str]] = {}
    for row in window:
        per_collection.setdefault(row["collection_id"], []).append(row["document_id"])
    found = {
        d.document_id: d
        for collection_id, ids in per_collection.items()
        for d in index.get_many(collection_id, ids, with_vectors)
    }
    # A document deleted between the key scan and this read is left out rather than failing the page.
    return [found[row["document_id"]] for row in window if row["document_id"] in found]
