"""A document's media as a download: the file it was cut into, or else its source object's file."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from strataflow.blobs import BlobStore
from strataflow.errors import NotFoundError
from strataflow.index.records import StoredDocument
from strataflow.index.store import DocumentIndex
from strataflow.services.documents.crud import get_document
from strataflow.services.documents.lineage import find_object, source_object_id
from strataflow.services.documents.model import PRESIGNED_GET_SECONDS
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.tables import BucketObject, Collection


def _document_key(doc: StoredDocument) -> str | None:
    """The first stored file the extractor made for this document (a clip, a frame, a page image)."""
    return next((str(e["key"]) for e in doc.internal.get("document_blobs") or [] if e.get("key")), None)


def source_blob(obj: BucketObject, doc: StoredDocument) -> dict[str, Any] | None:
    """The object's stored blob the document came from: the blob it was made from when known,
    else the object's first stored blob; None when the object keeps no file."""
    made_from = {ref.get("blob_id") for ref in doc.internal.get("source_blobs") or []}
    stored = [b for b in obj.blobs if (b.get("properties") or {}).get("key")]
    stored.sort(key=lambda b: b.get("blob_id") not in made_from)  # the blobs it was made from first
    return stored[0] if stored else None


def _source_key(session: Session, scope: NamespaceScope, doc: StoredDocument) -> str | None:
    """The stored file of the object the document came from."""
    object_id = source_object_id(doc)
    obj = find_object(session, scope, object_id) if object_id else None
    blob = source_blob(obj, doc) if obj is not None else None
    return str(blob["properties"]["key"]) if blob is not None else None


def _seconds(doc: StoredDocument, name: str) -> float | None:
    position = (doc.internal.get("metadata") or {}).get("position") or {}
    for value in (doc.payload.get(name), position.get(name)):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def document_download(
    session: Session,
    index: DocumentIndex,
    blobs: BlobStore,
    scope: NamespaceScope,
    collection: Collection,
    document_id: str,
) -> dict[str, Any]:
    """A presigned URL for the document's media (the SDK's SceneDownloadResponse).

    Nothing is re-encoded: the URL is for a file already stored, so `cached` is always true. A
    document without a time range (an image, a whole file) reports 0 to 0."""
    doc = get_document(index, collection, document_id)
    source = "document_blob"
    key = _document_key(doc)
    if key is None:
        source, key = "source_object", _source_key(session, scope, doc)
    if key is None:
        raise NotFoundError(
            f"Document '{document_id}' has no stored media to download",
            {"document_id": document_id, "reason": "no document_blobs and no source object file"},
        )
    start = _seconds(doc, "start_time") or 0.0
    end = _seconds(doc, "end_time")
    return {
        "download_url": blobs.presigned_get_url(key, PRESIGNED_GET_SECONDS),
        "cached": True,
        "start_time": start,
        "end_time": end if end is not None else start,
        "source": source,
    }
