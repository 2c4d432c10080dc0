"""What a new batch covers, decided when it is created: its objects (listed, or a filter resolved
here with the object list's filter language), the collections it runs through (a scope), and
which objects its dedup strategy leaves out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.errors import BadRequestError, NotFoundError
from strataflow.index.store import DocumentIndex, quote_ids
from strataflow.schemas.batches import MAX_FILTERED_OBJECTS
from strataflow.services.collections.dag import scoped_tiers
from strataflow.services.collections.sources import collection_nodes
from strataflow.services.objects.crud import OBJECT_FIELDS
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.store.filters import compile_filters
from strataflow.store.tables import Bucket, BucketObject

_ID_CHUNK = 500  # ids per IN (...) clause of an index query
_AUDIT_IDS = 1000  # skipped ids listed per collection in dedup_audit (the contract's bound)


def filtered_object_ids(
    session: Session, scope: NamespaceScope, bucket: Bucket, filters: dict[str, Any], limit: int | None
) -> list[str]:
    """The bucket's objects matching `filters`, oldest first, at most `limit` (or 50,000).

    More than 50,000 matches without a `limit` is refused rather than cut short: a batch
    silently holding an arbitrary part of what was asked for would look complete."""
    query = select(BucketObject.object_id).where(
        BucketObject.bucket_id == bucket.bucket_id, BucketObject.namespace_id == scope.namespace_id
    )
    clause = compile_filters(filters, OBJECT_FIELDS)
    if clause is not None:
        query = query.where(clause)
    query = query.order_by(BucketObject.created_at, BucketObject.object_id)
    ids = list(session.scalars(query.limit(limit if limit is not None else MAX_FILTERED_OBJECTS + 1)))
    if len(ids) > MAX_FILTERED_OBJECTS:
        raise BadRequestError(
            f"filters match more than {MAX_FILTERED_OBJECTS:,} objects, the most one batch may resolve from a "
            "filter; narrow the filter or give a limit",
            {"max_objects": MAX_FILTERED_OBJECTS},
        )
    if not ids:
        raise BadRequestError(
            f"filters match no object of bucket '{bucket.bucket_name}'; a batch needs at least one object",
            {"bucket_id": bucket.bucket_id, "filters": filters},
        )
    return ids


def planned_tiers(
    session: Session, scope: NamespaceScope, bucket: Bucket, collection_ids: list[str] | None
) -> list[list[str]]:
    """The tiers a batch of this bucket runs, kept to `collection_ids` when given.

    An id that names no collection of the namespace is a 404; one that exists but is not fed
    (directly or downstream) by this bucket, or is disabled, is a 400."""
    nodes = collection_nodes(session, scope.namespace_id)
    if collection_ids is None:
        return scoped_tiers(bucket.bucket_id, nodes)
    unknown = [cid for cid in collection_ids if cid not in {n.collection_id for n in nodes}]
    if unknown:
        raise NotFoundError(
            "collection_ids names collections that do not exist in this namespace",
            {"resource": "Collection", "collection_ids": unknown},
        )
    reachable = {cid for tier in scoped_tiers(bucket.bucket_id, nodes) for cid in tier}
    unreachable = [cid for cid in collection_ids if cid not in reachable]
    if unreachable:
        raise BadRequestError(
            f"collection_ids names collections that bucket '{bucket.bucket_name}' does not feed "
            "(or that are disabled); a batch can only run collections downstream of its bucket",
            {"collection_ids": unreachable, "bucket_id": bucket.bucket_id},
        )
    return scoped_tiers(bucket.bucket_id, nodes, collection_ids)


@dataclass
class Dedup:
    """The objects a batch keeps after its dedup strategy, and the audit of what it left out."""

    object_ids: list[str]
    audit: dict[str, Any] | None = field(default=None)


def _with_documents(index: DocumentIndex, collection_id: str, object_ids: list[str]) -> set[str]:
    """Those of `object_ids` that already have a document in the collection (from any batch)."""
    if not index.has_table(collection_id):
        return set()
    found: set[str] = set()
    for start in range(0, len(object_ids), _ID_CHUNK):
        where = f"root_object_id IN ({quote_ids(object_ids[start : start + _ID_CHUNK])})"
        table = index.select(collection_id, where, {"root_object_id": "root_object_id"})
        found.update(str(v) for v in table.column("root_object_id").to_pylist())
    return found


def apply_dedup(index: DocumentIndex, strategy: str | None, first_tier: list[str], object_ids: list[str]) -> Dedup:
    """'skip' leaves out the objects that already have documents in every collection of the
    batch's first tier (what later tiers read follows from it); 'replace', 'force' and no
    strategy keep all. (Processing an object again always replaces its documents here: their ids
    derive from the source, and a source's documents not written again are removed after the
    new ones are, see `engine.tiers.collection_run`; so 'force' never makes duplicates.)

    An object with documents in only some first-tier collections stays: the others still need it,
    and rewriting the ones it has is harmless (document ids are derived from their source)."""
    if strategy != "skip":
        return Dedup(object_ids)
    done: set[str] | None = None
    for collection_id in first_tier:
        found = _with_documents(index, collection_id, object_ids)
        done = found if done is None else done & found
    skipped = [o for o in object_ids if o in (done or set())]
    kept = [o for o in object_ids if o not in (done or set())]
    entry = {
        "dedup_strategy": strategy,
        "total_input": len(object_ids),
        "skipped": len(skipped),
        "processed": len(kept),
        "skipped_object_ids": skipped[:_AUDIT_IDS],
    }
    return Dedup(kept, {collection_id: dict(entry) for collection_id in first_tier})
