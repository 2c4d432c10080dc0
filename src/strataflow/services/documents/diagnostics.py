"""Support diagnostics for one document: is it searchable, what failed for its object, its history."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.clock import isoformat
from strataflow.index.records import StoredDocument
from strataflow.index.store import DocumentIndex
from strataflow.services.documents.crud import get_document
from strataflow.services.documents.lineage import find_object, source_object_id
from strataflow.services.documents.model import vector_names
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.tables import Collection, DocumentFailure

MAX_FAILURES = 20


def _visibility(collection: Collection, doc: StoredDocument, object_id: str | None) -> dict[str, Any]:
    """Vectors live in the document's own row: it is searchable by vector when each index has one."""
    indexes = sorted(vector_names(collection))
    missing = [name for name in indexes if not doc.vectors.get(name)]
    if not indexes:
        searchable, reason = None, "The collection has no vector index: the document is found by filters only."
    elif missing:
        searchable, reason = False, f"No vector for index(es) {', '.join(missing)}: vector search cannot find it."
    else:
        searchable, reason = True, f"Vectors present for every index ({', '.join(indexes)})."
    return {"searchable": searchable, "reason": reason, "source_object_id": object_id}


def _failures(session: Session, scope: NamespaceScope, object_id: str | None) -> dict[str, Any]:
    """The object's own status and error, then the tier failures recorded against it in this namespace."""
    if object_id is None:
        return {"failures": [], "reason": "The document names no source object (it was written directly)."}
    obj = find_object(session, scope, object_id)
    if obj is None:
        return {"failures": [], "reason": f"Source object '{object_id}' no longer exists."}
    found: list[dict[str, Any]] = []
    if obj.error:
        found.append({"source": "object", "object_id": object_id, "status": str(obj.status), "error": obj.error})
    namespace_collections = select(Collection.collection_id).where(Collection.namespace_id == scope.namespace_id)
    rows = session.scalars(
        select(DocumentFailure)
        .where(DocumentFailure.root_object_id == object_id, DocumentFailure.collection_id.in_(namespace_collections))
        .order_by(DocumentFailure.created_at.desc(), DocumentFailure.failure_id.desc())
        .limit(MAX_FAILURES)
    )
    found += [
        {
            "source": "document_failures",
            "object_id": object_id,
            "status": "RESOLVED" if row.resolved else "FAILED",
            "error": row.message,
            "error_type": row.error_type,
            "collection_id": row.collection_id,
            "batch_id": row.batch_id,
            "created_at": isoformat(row.created_at),
        }
        for row in rows
    ]
    answer: dict[str, Any] = {"failures": found}
    if not found:
        answer["reason"] = f"Object '{object_id}' is {obj.status} with no recorded error or tier failure."
    return answer


def _history(doc: StoredDocument) -> dict[str, Any]:
    """What the document itself records: each lineage step, its ingestion, its last change."""
    entries = [
        {"source": "lineage.chain", "timestamp": step.get("timestamp"), "detail": dict(step)}
        for step in doc.lineage.get("chain") or []
    ]
    metadata = doc.internal.get("metadata") or {}
    entries.append({"source": "ingestion_status", "timestamp": doc.created_at, "detail": dict(metadata)})
    if doc.updated_at != doc.created_at:
        entries.append({"source": "updated_at", "timestamp": doc.updated_at, "detail": None})
    return {"entries": entries}


def document_diagnostics(
    session: Session, index: DocumentIndex, scope: NamespaceScope, collection: Collection, document_id: str
) -> dict[str, Any]:
    """The SDK's DocumentDiagnosticsResponse."""
    doc = get_document(index, collection, document_id, with_vectors=True)
    object_id = source_object_id(doc)
    return {
        "document_id": doc.document_id,
        "collection_id": collection.collection_id,
        "source_object_id": object_id,
        "visibility_reason": _visibility(collection, doc, object_id),
        "recent_failures": _failures(session, scope, object_id),
        "diagnostic_history": _history(doc),
    }
