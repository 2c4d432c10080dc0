"""The documents an object gave rise to, in every collection: removed with it, never written after it.

Every document carries the object it descends from (`root_object_id`), however many
tiers down, so "the object's documents and their descendants" is one filter per
collection. A delete removes them from the index (lists, retrievers and the vector and
text indexes all read it) and removes their generated files.

A tier may be running for the object when it is deleted. The writer asks which of its
rows' objects still exist right before it writes (`live_roots`) and drops the rest, and
asks again after the write: a delete that landed in between is cleaned up at once, so
no document outlives its object.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.blobs import BlobStore
from strataflow.index.records import StoredDocument
from strataflow.index.store import DocumentIndex, quote_ids
from strataflow.store.db import Database
from strataflow.store.tables import BucketObject, Collection

log = logging.getLogger("strataflow.documents")

# Which of these object ids still exist: the question a writer asks before and after a write.
LiveRoots = Callable[[set[str]], set[str]]

OBJECT_DELETED = "the object was deleted while its batch ran"


def delete_document_files(blobs: BlobStore, docs: Iterable[StoredDocument]) -> None:
    """The files a document's extractor made (segments, thumbnails, page images)."""
    for doc in docs:
        for entry in doc.internal.get("document_blobs") or []:
            if entry.get("key"):
                blobs.delete(entry["key"])


def remove_documents_of_objects(
    index: DocumentIndex, blobs: BlobStore, collection_ids: Iterable[str], object_ids: Iterable[str]
) -> int:
    """Delete every document descending from `object_ids` in `collection_ids`, files included."""
    ids = sorted(set(object_ids))
    if not ids:
        return 0
    where = f"root_object_id IN ({quote_ids(ids)})"
    removed = 0
    for collection_id in collection_ids:
        if not index.has_table(collection_id):
            continue
        docs = index.query(collection_id, where)
        if not docs:
            continue
        removed += index.delete(collection_id, where)
        delete_document_files(blobs, docs)
    return removed


def namespace_collection_ids(session: Session, namespace_id: str) -> list[str]:
    """Every collection of a namespace: an object's documents can be in any of them."""
    return list(session.scalars(select(Collection.collection_id).where(Collection.namespace_id == namespace_id)))


def live_roots_in(db: Database) -> LiveRoots:
    """A `LiveRoots` that asks the database, in a short read of its own (no lock held across a write)."""

    def alive(object_ids: set[str]) -> set[str]:
        if not object_ids:
            return set()
        with db.read_session() as session:
            found = session.scalars(select(BucketObject.object_id).where(BucketObject.object_id.in_(object_ids)))
            return set(found)

    return alive
