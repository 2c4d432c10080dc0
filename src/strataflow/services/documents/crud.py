"""Documents of a collection: read, create, replace, merge-update, bulk and batch changes, delete."""

from __future__ import annotations

from typing import Any

from strataflow.blobs import BlobStore
from strataflow.errors import BadRequestError, not_found
from strataflow.index.filters import compile_filter
from strataflow.index.records import StoredDocument, timestamp
from strataflow.index.store import DocumentIndex, quote_ids
from strataflow.schemas.documents import BatchDeleteDocumentsRequest, BatchUpdateDocumentsRequest, DocumentCreateRequest
from strataflow.services.documents.model import (
    random_document_id,
    resolve_field,
    split_vectors,
    vector_names,
)
from strataflow.store.tables import Collection

UPDATE_PAGE = 1000


def where_of(collection: Collection, filters: dict[str, Any] | None) -> str | None:
    return compile_filter(filters, lambda name: resolve_field(name, collection))


def get_document(
    index: DocumentIndex, collection: Collection, document_id: str, with_vectors: bool = False
) -> StoredDocument:
    doc = index.get(collection.collection_id, document_id, with_vectors)
    if doc is None:
        raise not_found("Document", document_id)
    return doc


def _feature_vectors(collection: Collection, vectors: Any) -> dict[str, Any]:
    """A FeatureModel's vectors: a bare list (the collection's only index) or {index name: list}."""
    if vectors is None:
        return {}
    names = sorted(vector_names(collection))
    if isinstance(vectors, list):
        if len(names) != 1:
            raise BadRequestError(
                "A bare vector needs a collection with exactly one vector index; name it instead",
                {"vector_indexes": names},
            )
        return {names[0]: vectors}
    if isinstance(vectors, dict):
        aliases = {str(d["name"]): str(d["index"]["name"]) for d in collection.vector_indexes}
        return {aliases.get(str(k), str(k)): v for k, v in vectors.items()}
    raise BadRequestError("Feature vectors must be a list of numbers or an object of named lists")


def create_document(index: DocumentIndex, collection: Collection, request: DocumentCreateRequest) -> StoredDocument:
    """Insert a document directly, bypassing extraction, with whatever lineage the caller states."""
    if request.collection_id not in (None, collection.collection_id, collection.collection_name):
        raise BadRequestError(
            "collection_id in the body differs from the collection in the path",
            {"collection_id": request.collection_id},
        )
    body: dict[str, Any] = dict(request.model_extra or {})
    if request.metadata:
        body["metadata"] = request.metadata
    vectors: dict[str, Any] = {}
    for feature in request.features:
        body.update(feature.payload)
        vectors.update(_feature_vectors(collection, feature.vectors))
    fields, more_vectors = split_vectors({**body, **vectors}, collection)
    now = timestamp()
    document_id = random_document_id()
    lineage = {
        "root_object_id": request.root_object_id,
        "root_bucket_id": request.root_bucket_id,
        "source_type": request.source_type,
        "source_object_id": request.source_object_id,
        "source_document_id": request.source_document_id,
        "source_collection_id": request.source_collection_id,
        "path": request.lineage_path,
        "chain": request.lineage_chain or None,
    }
    internal = {
        "namespace_id": collection.namespace_id,
        "lineage": {k: v for k, v in lineage.items() if v is not None} or None,
        "metadata": {
            "ingestion_status": "COMPLETED",
            "created_by": "api",
            "document_schema_version": request.document_schema_version,
        },
    }
    doc = StoredDocument(document_id, collection.collection_id, fields, internal, more_vectors, now, now)
    index.upsert(collection.collection_id, [doc])
    return doc


def update_document(
    index: DocumentIndex, collection: Collection, document_id: str, body: dict[str, Any], *, replace: bool
) -> StoredDocument:
    """PUT replaces the user fields; PATCH merges into them. Vector fields in the body replace vectors."""
    doc = get_document(index, collection, document_id, with_vectors=True)
    fields, vectors = split_vectors(body, collection)
    doc.payload = fields if replace else {**doc.payload, **fields}
    doc.vectors.update(vectors)
    doc.updated_at = timestamp()
    index.upsert(collection.collection_id, [doc])
    return doc


def _merge_all(
    index: DocumentIndex, collection: Collection, docs: list[StoredDocument], update: dict[str, Any]
) -> None:
    fields, vectors = split_vectors(update, collection)
    now = timestamp()
    for doc in docs:
        doc.payload = {**doc.payload, **fields}
        doc.vectors.update(vectors)
        doc.updated_at = now
    index.upsert(collection.collection_id, docs)


def bulk_update(
    index: DocumentIndex, collection: Collection, filters: dict[str, Any] | None, update: dict[str, Any]
) -> list[str]:
    """Merge `update` into every document matching `filters` (all documents when none); their ids."""
    split_vectors(update, collection)  # refuse a bad update before touching anything
    where = where_of(collection, filters)
    ids = [
        row["document_id"]
        for row in index.select(collection.collection_id, where, {"document_id": "document_id"}).to_pylist()
    ]
    for start in range(0, len(ids), UPDATE_PAGE):
        docs = index.get_many(collection.collection_id, ids[start : start + UPDATE_PAGE], with_vectors=True)
        _merge_all(index, collection, docs, update)
    return ids


def batch_update(
    index: DocumentIndex, collection: Collection, request: BatchUpdateDocumentsRequest
) -> list[dict[str, Any]]:
    if request.updates is None:
        if request.update_data is None:
            raise BadRequestError("Send 'updates' (per document) or 'filters' with 'update_data'")
        ids = bulk_update(index, collection, request.filters, request.update_data)
        return [{"document_id": "*", "success": True, "error": None, "updated": len(ids), "document_ids": ids}]
    for item in request.updates:
        split_vectors(item.update_data, collection)
    found = {
        d.document_id: d
        for d in index.get_many(collection.collection_id, [u.document_id for u in request.updates], with_vectors=True)
    }
    results, now = [], timestamp()
    changed: dict[str, StoredDocument] = {}
    for item in request.updates:
        doc = changed.get(item.document_id) or found.get(item.document_id)
        if doc is None:
            results.append({"document_id": item.document_id, "success": False, "error": "Document not found"})
            continue
        fields, vectors = split_vectors(item.update_data, collection)
        doc.payload = {**doc.payload, **fields}
        doc.vectors.update(vectors)
        doc.updated_at = now
        changed[doc.document_id] = doc
        results.append({"document_id": item.document_id, "success": True, "error": None})
    index.upsert(collection.collection_id, list(changed.values()))
    return results


def _delete_blobs(blobs: BlobStore, docs: list[StoredDocument]) -> None:
    for doc in docs:
        for entry in doc.internal.get("document_blobs") or []:
            if entry.get("key"):
                blobs.delete(entry["key"])


def delete_documents(
    index: DocumentIndex, blobs: BlobStore, collection: Collection, request: BatchDeleteDocumentsRequest
) -> list[dict[str, Any]]:
    """Delete by ids (each reported) or by filter; their generated files go too."""
    if request.document_ids is None and request.filters is None:
        raise BadRequestError("Send document_ids or filters; deleting a whole collection's documents needs a filter")
    if request.document_ids is not None:
        ids = list(dict.fromkeys(request.document_ids))
        docs = index.get_many(collection.collection_id, ids)
        where = f"document_id IN ({quote_ids(ids)})" if ids else None
    else:
        where = where_of(collection, request.filters) or "TRUE"
        docs = index.query(collection.collection_id, where)
        ids = [d.document_id for d in docs]
    existing = {d.document_id for d in docs}
    if where and existing:
        index.delete(collection.collection_id, where)
    _delete_blobs(blobs, docs)
    return [
        {"document_id": i, "success": i in existing, "error": None if i in existing else "Document not found"}
        for i in ids
    ]


def delete_document(index: DocumentIndex, blobs: BlobStore, collection: Collection, document_id: str) -> StoredDocument:
    """Delete one document and its generated files; returns what it was."""
    doc = get_document(index, collection, document_id)
    index.delete(collection.collection_id, f"document_id IN ({quote_ids([document_id])})")
    _delete_blobs(blobs, [doc])
    return doc
