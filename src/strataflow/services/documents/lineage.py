"""Lineage: where a document came from, and everything an object became."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.errors import not_found
from strataflow.index.records import StoredDocument
from strataflow.index.store import DocumentIndex, quote_ids
from strataflow.services.collections.sources import find_collection, get_collection, upstream_ids
from strataflow.services.documents.crud import get_document
from strataflow.services.documents.namespace import namespace_collections
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.tables import BucketObject, Collection

MAX_DOCUMENTS_PER_OBJECT = 10_000
# Bounds on a lineage walk: a chain longer than this, or a cycle, is data damage, not a pipeline.
MAX_ANCESTORS = 32
MAX_DESCENDANTS = 100  # per request, as the SDK documents
MAX_DESCENDANT_DEPTH = 10


def document_lineage(index: DocumentIndex, collection: Collection, document_id: str) -> dict[str, Any]:
    """The document's chain back to its root object (the SDK's DocumentLineageResponse)."""
    doc = get_document(index, collection, document_id)
    lineage = doc.lineage
    answer: dict[str, Any] = {"document_id": doc.document_id, "collection_id": collection.collection_id}
    if not lineage or not (lineage.get("root_object_id") or lineage.get("source_document_id")):
        return {
            **answer,
            "lineage": None,
            "depth": 0,
            "total_steps": 0,
            "message": "This document carries no lineage (it was not made from an object or a document).",
        }
    chain = [
        {k: step.get(k) for k in ("collection_id", "feature_extractor_id", "document_id", "timestamp")}
        for step in lineage.get("chain") or []
    ]
    return {
        **answer,
        "lineage": {
            "root_object_id": lineage.get("root_object_id"),
            "root_bucket_id": lineage.get("root_bucket_id"),
            "source_type": lineage.get("source_type"),
            "source_object_id": lineage.get("source_object_id"),
            "source_document_id": lineage.get("source_document_id"),
            "source_collection_id": lineage.get("source_collection_id"),
            "path": lineage.get("path"),
            "lineage_chain": chain,
        },
        "depth": len(chain),
        "total_steps": len(chain),
    }


def _root_filter(object_id: str) -> str:
    return f"root_object_id IN ({quote_ids([object_id])})"


def documents_by_object(
    session: Session, index: DocumentIndex, scope: NamespaceScope, object_id: str, collection_ids: list[str] | None
) -> tuple[dict[str, list[StoredDocument]], list[Collection]]:
    """Every document whose root is the object, per collection (optionally only some collections)."""
    if collection_ids:
        collections = [get_collection(session, scope, c) for c in dict.fromkeys(collection_ids)]
    else:
        collections = namespace_collections(session, scope)
    return _per_collection(index, collections, _root_filter(object_id), MAX_DOCUMENTS_PER_OBJECT), collections


def _per_collection(
    index: DocumentIndex, collections: list[Collection], where: str, limit: int
) -> dict[str, list[StoredDocument]]:
    """The documents matching `where` in each collection that has a table, oldest first."""
    return {
        c.collection_id: index.query(
            c.collection_id, where, order=[("created_at", True), ("document_id", True)], limit=limit
        )
        for c in collections
        if index.has_table(c.collection_id)
    }


def parent_of(
    session: Session, index: DocumentIndex, scope: NamespaceScope, doc: StoredDocument, collection: Collection
) -> tuple[StoredDocument, Collection] | None:
    """The document `doc` was made from, and its collection; None at the root or when the parent is gone.

    A lineage that names no source collection (a document created by hand) is looked up in the
    collections this one reads from."""
    parent_id = doc.lineage.get("source_document_id")
    if not parent_id:
        return None
    named = doc.lineage.get("source_collection_id")
    for candidate_id in [named] if named else upstream_ids(collection):
        candidate = find_collection(session, scope, candidate_id)
        if candidate is None or not index.has_table(candidate.collection_id):
            continue
        parent = index.get(candidate.collection_id, parent_id)
        if parent is not None:
            return parent, candidate
    return None


def document_ancestors(
    session: Session, index: DocumentIndex, scope: NamespaceScope, collection: Collection, document_id: str
) -> list[StoredDocument]:
    """The documents this one descends from, root first, immediate parent last (itself excluded)."""
    doc = get_document(index, collection, document_id)
    chain: list[StoredDocument] = []
    seen = {doc.document_id}
    while len(chain) < MAX_ANCESTORS and (found := parent_of(session, index, scope, doc, collection)):
        doc, collection = found
        if doc.document_id in seen:
            break
        seen.add(doc.document_id)
        chain.append(doc)
    return chain[::-1]


def document_descendants(
    session: Session,
    index: DocumentIndex,
    scope: NamespaceScope,
    collection: Collection,
    document_id: str,
    depth: int = 1,
) -> list[StoredDocument]:
    """Documents of the namespace made from this one (depth 1), from those (depth 2), and so on.

    Level by level, oldest first within a collection; at most MAX_DESCENDANTS in all."""
    doc = get_document(index, collection, document_id)
    collections = namespace_collections(session, scope)
    found: list[StoredDocument] = []
    seen = {doc.document_id}
    frontier = [doc.document_id]
    for _ in range(min(depth, MAX_DESCENDANT_DEPTH)):
        if not frontier or len(found) >= MAX_DESCENDANTS:
            break
        where = f"source_document_id IN ({quote_ids(frontier)})"
        level = [
            d
            for docs in _per_collection(index, collections, where, MAX_DESCENDANTS).values()
            for d in docs
            if d.document_id not in seen
        ][: MAX_DESCENDANTS - len(found)]
        seen.update(d.document_id for d in level)
        found += level
        frontier = [d.document_id for d in level]
    return found


def find_object(session: Session, scope: NamespaceScope, object_id: str) -> BucketObject | None:
    return session.scalar(
        select(BucketObject).where(BucketObject.object_id == object_id, BucketObject.namespace_id == scope.namespace_id)
    )


def _object(session: Session, scope: NamespaceScope, object_id: str) -> BucketObject:
    row = find_object(session, scope, object_id)
    if row is None:
        raise not_found("Object", object_id)
    return row


def source_object_id(doc: StoredDocument) -> str | None:
    """The object the document was made from: its direct source, else the root of its chain."""
    value = doc.lineage.get("source_object_id") or doc.lineage.get("root_object_id")
    return str(value) if value else None


def decomposition_tree(
    session: Session, index: DocumentIndex, scope: NamespaceScope, object_id: str, include_document_ids: bool
) -> dict[str, Any]:
    """Object → collections reading its bucket → collections reading those, with document counts."""
    obj = _object(session, scope, object_id)
    collections = namespace_collections(session, scope)
    children: dict[str, list[Collection]] = {}
    roots: list[Collection] = []
    for collection in collections:
        if collection.source.get("type") == "bucket":
            if obj.bucket_id in collection.source.get("bucket_ids", []):
                roots.append(collection)
        else:
            for parent in upstream_ids(collection):
                children.setdefault(parent, []).append(collection)

    def node(collection: Collection, tier: int, path: tuple[str, ...]) -> dict[str, Any]:
        where = _root_filter(object_id)
        entry: dict[str, Any] = {
            "collection_id": collection.collection_id,
            "collection_name": collection.collection_name,
            "feature_extractor": collection.feature_extractor.get("feature_extractor_id"),
            "tier": tier,
            "document_count": index.count(collection.collection_id, where),
        }
        if include_document_ids:
            entry["document_ids"] = (
                [d.document_id for d in index.query(collection.collection_id, where, limit=MAX_DOCUMENTS_PER_OBJECT)]
                if index.has_table(collection.collection_id)
                else []
            )
        entry["children"] = [
            node(child, tier + 1, (*path, child.collection_id))
            for child in children.get(collection.collection_id, [])
            if child.collection_id not in path
        ]
        return entry

    tree = [node(root, 0, (root.collection_id,)) for root in roots]
    return {
        "object_id": obj.object_id,
        "bucket_id": obj.bucket_id,
        "root": {"type": "object", "object_id": obj.object_id, "bucket_id": obj.bucket_id},
        "collections": tree,
        "children": tree,
        "total_documents": _total(tree),
        "max_depth": _depth(tree),
    }


def _total(nodes: list[dict[str, Any]]) -> int:
    return sum(n["document_count"] + _total(n["children"]) for n in nodes)


def _depth(nodes: list[dict[str, Any]]) -> int:
    return max((1 + _depth(n["children"]) for n in nodes), default=0)
