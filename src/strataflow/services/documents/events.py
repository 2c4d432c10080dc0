"""The events a document change through the documents API records.

Documents live in the document index, not in the database, so no one transaction holds both the
change and its event: the event is committed in a short transaction right after the index
accepted the change (a change the index refused records nothing). A crash between the two loses
that event; every change made in the database (objects, batches, clusters, ...) has its event
in its own transaction instead.

Single-document changes record one `document.*` event carrying the document as the API returns
it (vectors left out). Batch and filter changes record one `documents.*.batch` event per request
with the count and at most `IDS_MAX` ids (`document_ids_truncated` says when there were more):
a filter matching 100,000 documents is one event, never 100,000. Documents a batch's tiers write
are reported by `collection.documents.written`, one per collection per tier (engine/lifecycle/events.py).
"""

from __future__ import annotations

from typing import Any

from strataflow.clock import isoformat, utcnow
from strataflow.index.records import StoredDocument
from strataflow.services.documents.model import document_view
from strataflow.services.events.outbox import emit
from strataflow.store.db import Database
from strataflow.store.tables import Collection

IDS_MAX = 1000  # document ids one batch event names


def _where(collection: Collection) -> dict[str, Any]:
    return {
        "collection_id": collection.collection_id,
        "collection_name": collection.collection_name,
        "namespace_id": collection.namespace_id,
    }


def _record(db: Database, collection: Collection, event_type: str, resource_id: str, payload: dict[str, Any]) -> None:
    with db.transaction() as session:
        emit(session, event_type, namespace_id=collection.namespace_id, resource_id=resource_id, payload=payload)


def document_changed(db: Database, collection: Collection, event_type: str, doc: StoredDocument) -> None:
    """`document.created` or `document.updated`: the document as GET returns it, without vectors."""
    payload = {**_where(collection), "document_id": doc.document_id, "document": document_view(doc)}
    _record(db, collection, event_type, doc.document_id, payload)


def document_deleted(db: Database, collection: Collection, doc: StoredDocument) -> None:
    lineage = doc.internal.get("lineage") or {}
    payload = {
        **_where(collection),
        "document_id": doc.document_id,
        "root_object_id": lineage.get("root_object_id"),
        "root_bucket_id": lineage.get("root_bucket_id"),
        "deleted_at": isoformat(utcnow()),
    }
    _record(db, collection, "document.deleted", doc.document_id, payload)


def documents_batch(
    db: Database,
    collection: Collection,
    event_type: str,
    document_ids: list[str],
    *,
    filters: dict[str, Any] | None = None,
    fields: list[str] | None = None,
    reason: str | None = None,
) -> None:
    """`documents.updated.batch` or `documents.deleted.batch`: one event per request, ids bounded;
    the caller's `reason` (a delete's) is carried when given."""
    if not document_ids:
        return
    payload: dict[str, Any] = {
        **_where(collection),
        "count": len(document_ids),
        "document_ids": document_ids[:IDS_MAX],
        "document_ids_truncated": len(document_ids) > IDS_MAX,
        "filters": filters,
    }
    if fields is not None:
        payload["fields"] = fields
    if reason is not None:
        payload["reason"] = reason
    _record(db, collection, event_type, collection.collection_id, payload)
