"""Reconciliation: did every source object submitted to a collection produce a document?

"Submitted" is what the batch engine recorded: the member objects (`batch_objects`) of every
submitted batch with a tier that runs the collection (bucket batches and trigger runs alike).
For a collection reading other collections, an object counts as submitted only if the upstream
collection(s) hold a document rooted in it: an object that produced nothing upstream was never
this collection's input, and its loss is the upstream collection's discrepancy, not this one's.
Objects a bucket source's `source_filters` leave out are not counted: the tier skips them untried.
Any object a document of the collection is rooted in counts as submitted too (its batch may
since have been deleted), so `delta` is never negative.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.clock import as_utc, utcnow
from strataflow.index.store import DocumentIndex
from strataflow.services.collections.sources import get_collection, source_kind, upstream_ids
from strataflow.services.objects.crud import OBJECT_FIELDS
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.statuses import TERMINAL
from strataflow.store.filters import compile_filters
from strataflow.store.tables import Batch, BatchObject, BatchTier, BucketObject, Collection, DocumentFailure

_CHUNK = 1_000  # ids per IN list: well under SQLite's bound-variable limit


@dataclass
class Submissions:
    """The objects batches sent through a collection: the bucket each came from, and which are in flight."""

    bucket_of: dict[str, str] = field(default_factory=dict)
    in_flight: set[str] = field(default_factory=set)


def reconcile(
    session: Session, index: DocumentIndex, scope: NamespaceScope, identifier: str, limit: int
) -> dict[str, Any]:
    collection = get_collection(session, scope, identifier)
    submissions = submitted_objects(session, collection)
    submitted = set(submissions.bucket_of)
    if source_kind(collection.source) == "bucket":
        submitted = passing_source_filters(session, collection, submitted)
    else:
        submitted &= set().union(*(root_objects(index, upstream) for upstream in upstream_ids(collection)))
    produced = root_objects(index, collection.collection_id)
    sources = submitted | produced
    missing = sorted(sources - produced)
    return {
        "collection_id": collection.collection_id,
        "source_object_count": len(sources),
        "produced_object_count": len(produced),
        "document_count": index.count(collection.collection_id),
        "delta": len(missing),
        "discrepancies": discrepancies(session, collection, submissions, missing[:limit]),
        "discrepancies_truncated": len(missing) > limit,
        "limit": limit,
    }


def submitted_objects(session: Session, collection: Collection) -> Submissions:
    tiers = session.execute(
        select(BatchTier.batch_id, BatchTier.collection_ids, Batch.status, Batch.bucket_id)
        .join(Batch, Batch.batch_id == BatchTier.batch_id)
        .where(Batch.namespace_id == collection.namespace_id)
    )
    batches = {
        batch_id: (bucket_id, status not in TERMINAL)
        for batch_id, collection_ids, status, bucket_id in tiers
        if collection.collection_id in (collection_ids or [])
    }
    found = Submissions()
    for chunk in _chunks(sorted(batches)):
        members = session.execute(
            select(BatchObject.batch_id, BatchObject.object_id).where(BatchObject.batch_id.in_(chunk))
        )
        for batch_id, object_id in members:
            bucket_id, running = batches[batch_id]
            found.bucket_of.setdefault(object_id, bucket_id)
            if running:
                found.in_flight.add(object_id)
    return found


def passing_source_filters(session: Session, collection: Collection, object_ids: set[str]) -> set[str]:
    """The objects a bucket-sourced collection's `source_filters` let through: the tier skips the
    rest without trying them, so they were never this collection's input."""
    filters = ((collection.source or {}).get("source_filters") or {}).get("filters")
    clause = compile_filters(filters, OBJECT_FIELDS) if filters else None
    if clause is None:
        return object_ids
    query = select(BucketObject.object_id).where(clause)
    return {
        object_id
        for chunk in _chunks(sorted(object_ids))
        for object_id in session.scalars(query.where(BucketObject.object_id.in_(chunk)))
    }


def root_objects(index: DocumentIndex, collection_id: str) -> set[str]:
    """The distinct objects the documents of a collection are rooted in."""
    if not index.has_table(collection_id):
        return set()
    roots: set[str] = set()
    for batch in index.scan(collection_id, ["root_object_id"], None):
        roots.update(r for r in batch.column("root_object_id").to_pylist() if r)
    return roots


def discrepancies(
    session: Session, collection: Collection, submissions: Submissions, object_ids: list[str]
) -> list[dict[str, Any]]:
    """Why each object produced nothing: still in a running batch, a recorded failure, or no record at all."""
    objects = {
        o.object_id: o
        for chunk in _chunks(object_ids)
        for o in session.scalars(select(BucketObject).where(BucketObject.object_id.in_(chunk)))
    }
    errors = _failure_messages(session, collection.collection_id, object_ids)
    now = utcnow()
    entries = []
    for object_id in object_ids:
        row = objects.get(object_id)
        if object_id in submissions.in_flight:
            reason = "processing"  # a running batch (or retry) may still produce its documents
        elif object_id in errors:
            reason = "failed"
        else:
            reason = "no_document"  # processed without error, e.g. it lacked the extractor's input field
        entries.append(
            {
                "object_id": object_id,
                "bucket_id": row.bucket_id if row is not None else submissions.bucket_of.get(object_id),
                "reason": reason,
                "status": row.status.value if row is not None else None,
                "age_seconds": (now - as_utc(row.created_at)).total_seconds() if row is not None else None,
                "error": errors.get(object_id),
            }
        )
    return entries


def _failure_messages(session: Session, collection_id: str, object_ids: list[str]) -> dict[str, str]:
    """The newest unresolved failure message of this collection per root object."""
    messages: dict[str, str] = {}
    for chunk in _chunks(object_ids):
        failures = session.execute(
            select(DocumentFailure.root_object_id, DocumentFailure.message)
            .where(
                DocumentFailure.collection_id == collection_id,
                DocumentFailure.resolved.is_(False),
                DocumentFailure.root_object_id.in_(chunk),
            )
            .order_by(DocumentFailure.updated_at, DocumentFailure.failure_id)
        )
        messages.update({root: message for root, message in failures if root is not None})
    return messages


def _chunks(ids: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]
