"""What a batch's tiers wrote, row by row: which input rows have documents, which do not, and why.

For every collection of a tier, its input rows are the batch's member objects (tier 0) or the
documents its source collections hold for the batch's objects (later tiers). A row without
documents is explained by the first that applies:

- `source_gone`: its object (tier 0) no longer exists;
- `filtered`: the collection's source filters leave it out;
- `failed`: an unresolved failure is recorded for it (with its error);
- `no_input`: the engine recorded that it had no input for this collection;
- `lost`: none of these: the tier should have written documents for it and did not.

Documents whose source is gone (an object deleted, an upstream document removed) are
`orphaned`. The heal operation redoes the lost rows and removes the orphans.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.index.store import DocumentIndex, quote_ids
from strataflow.services.batches.members import member_ids
from strataflow.services.documents.crud import where_of
from strataflow.services.objects.crud import OBJECT_FIELDS
from strataflow.store.filters import compile_filters
from strataflow.store.tables import Batch, BatchTier, BucketObject, Collection, DocumentFailure

CHUNK = 500  # ids per IN (...) clause
NO_INPUT = "missing_input"  # the ledger's error_type for rows the engine found no input in (resolved)
REASONS = ("source_gone", "filtered", "failed", "no_input", "lost")


@dataclass
class RowGap:
    """One input row of one collection without documents, and why."""

    tier_num: int
    collection_id: str
    row_id: str
    root_object_id: str
    reason: str
    error_type: str | None = None
    error_message: str | None = None

    def payload(self) -> dict[str, Any]:
        key = "object_id" if self.row_id == self.root_object_id else "document_id"
        return {
            key: self.row_id,
            "root_object_id": self.root_object_id,
            "tier_num": self.tier_num,
            "collection_id": self.collection_id,
            "reason": self.reason,
            "error_type": self.error_type,
            "error_message": self.error_message,
        }


@dataclass
class CollectionAccount:
    """One collection of one tier: its input rows, those with documents, and the gaps."""

    tier_num: int
    collection_id: str
    submitted: int = 0
    processed: int = 0
    gaps: list[RowGap] = field(default_factory=list)
    orphaned_document_ids: list[str] = field(default_factory=list)

    def count(self, reason: str) -> int:
        return sum(1 for g in self.gaps if g.reason == reason)

    def payload(self) -> dict[str, Any]:
        return {
            "collection_id": self.collection_id,
            "submitted": self.submitted,
            "processed": self.processed,
            **{reason: self.count(reason) for reason in REASONS},
            "orphaned_documents": len(self.orphaned_document_ids),
        }


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def _select(index: DocumentIndex, collection_id: str, roots: list[str], columns: Iterable[str]) -> list[dict[str, Any]]:
    """Rows of a collection's documents for these root objects, only the named columns."""
    if not index.has_table(collection_id):
        return []
    rows: list[dict[str, Any]] = []
    for chunk in _chunks(roots):
        table = index.select(collection_id, f"root_object_id IN ({quote_ids(chunk)})", {c: c for c in columns})
        rows.extend(table.to_pylist())
    return rows


def _existing_objects(session: Session, bucket_id: str, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(ids):
        query = select(BucketObject.object_id).where(
            BucketObject.bucket_id == bucket_id, BucketObject.object_id.in_(chunk)
        )
        found.update(session.scalars(query))
    return found


def _passing(
    session: Session, index: DocumentIndex, batch: Batch, collection: Collection, roots: list[str], from_bucket: bool
) -> set[str] | None:
    """Input rows that pass the collection's source filters; None when it has none."""
    filters = ((collection.source or {}).get("source_filters") or {}).get("filters")
    if not filters:
        return None
    if from_bucket:
        clause = compile_filters(filters, OBJECT_FIELDS)
        passing: set[str] = set()
        for chunk in _chunks(roots):
            query = select(BucketObject.object_id).where(
                BucketObject.bucket_id == batch.bucket_id, BucketObject.object_id.in_(chunk)
            )
            passing.update(session.scalars(query.where(clause) if clause is not None else query))
        return passing
    passing = set()
    for source_id in _source_ids(collection):
        source = session.get(Collection, source_id)
        if source is None or not index.has_table(source_id):
            continue
        where = where_of(source, filters)
        for chunk in _chunks(roots):
            scope = f"root_object_id IN ({quote_ids(chunk)})"
            table = index.select(
                source_id, f"({where}) AND {scope}" if where else scope, {"document_id": "document_id"}
            )
            passing.update(table.column("document_id").to_pylist())
    return passing


def _source_ids(collection: Collection) -> list[str]:
    source = collection.source or {}
    ids = source.get("collection_ids") or ([source["collection_id"]] if source.get("collection_id") else [])
    return [str(i) for i in ids]


def _ledger(session: Session, batch_id: str, tier_num: int, collection_id: str) -> dict[str, DocumentFailure]:
    query = select(DocumentFailure).where(
        DocumentFailure.batch_id == batch_id,
        DocumentFailure.tier_num == tier_num,
        DocumentFailure.collection_id == collection_id,
    )
    return {f.row_id: f for f in session.scalars(query)}


def _input_rows(
    session: Session, index: DocumentIndex, batch: Batch, tier: BatchTier, collection: Collection, roots: list[str]
) -> tuple[dict[str, str], set[str]]:
    """The collection's input rows ({row id: root object id}) and the ids among them whose source is gone."""
    if tier.source_type == "bucket":
        alive = _existing_objects(session, batch.bucket_id, roots)
        return {r: r for r in roots}, {r for r in roots if r not in alive}
    rows: dict[str, str] = {}
    for source_id in _source_ids(collection):
        for doc in _select(index, source_id, roots, ("document_id", "root_object_id")):
            rows[str(doc["document_id"])] = str(doc["root_object_id"] or "")
    return rows, set()


def account_collection(
    session: Session, index: DocumentIndex, batch: Batch, tier: BatchTier, collection: Collection, roots: list[str]
) -> CollectionAccount:
    account = CollectionAccount(tier.tier_num, collection.collection_id)
    rows, gone = _input_rows(session, index, batch, tier, collection, roots)
    source_column = "source_object_id" if tier.source_type == "bucket" else "source_document_id"
    written = _select(index, collection.collection_id, roots, ("document_id", source_column))
    covered = {str(d[source_column]) for d in written if d[source_column]}
    account.orphaned_document_ids = sorted(
        str(d["document_id"]) for d in written if str(d[source_column] or "") not in rows or d[source_column] in gone
    )
    passing = _passing(session, index, batch, collection, list(roots), tier.source_type == "bucket")
    ledger = _ledger(session, batch.batch_id, tier.tier_num, collection.collection_id)
    account.submitted = len(rows)
    for row_id, root in rows.items():
        if row_id in covered and row_id not in gone:
            account.processed += 1
            continue
        gap = RowGap(tier.tier_num, collection.collection_id, row_id, root, "lost")
        known = ledger.get(row_id)
        if row_id in gone:
            gap.reason = "source_gone"
        elif passing is not None and row_id not in passing:
            gap.reason = "filtered"
        elif known is not None and not known.resolved:
            gap.reason, gap.error_type, gap.error_message = "failed", known.error_type, known.message
        elif known is not None and known.error_type == NO_INPUT:
            gap.reason = "no_input"
        account.gaps.append(gap)
    return account


def account_tier(session: Session, index: DocumentIndex, batch: Batch, tier: BatchTier) -> list[CollectionAccount]:
    roots = member_ids(session, batch.batch_id)
    accounts = []
    for collection_id in tier.collection_ids or []:
        collection = session.get(Collection, collection_id)
        if collection is not None:
            accounts.append(account_collection(session, index, batch, tier, collection, roots))
    return accounts


def tier_audit(tier: BatchTier, accounts: list[CollectionAccount]) -> dict[str, Any]:
    return {
        "tier_num": tier.tier_num,
        "status": tier.status,
        "submitted": sum(a.submitted for a in accounts),
        "processed": sum(a.processed for a in accounts),
        **{reason: sum(a.count(reason) for a in accounts) for reason in REASONS},
        "orphaned_documents": sum(len(a.orphaned_document_ids) for a in accounts),
        "collections": [a.payload() for a in accounts],
    }


def batch_audit(
    session: Session, index: DocumentIndex, batch: Batch, tiers: list[BatchTier], row_limit: int = 1000
) -> dict[str, Any]:
    """Every tier that ran, every collection: the accounting, and the rows without documents."""
    summaries: list[dict[str, Any]] = []
    gaps: list[RowGap] = []
    for tier in tiers:
        if tier.started_at is None:  # never ran: nothing to account for yet
            summaries.append({"tier_num": tier.tier_num, "status": tier.status, "ran": False})
            continue
        accounts = account_tier(session, index, batch, tier)
        summaries.append({**tier_audit(tier, accounts), "ran": True})
        gaps.extend(g for a in accounts for g in a.gaps)
    lost = [g for g in gaps if g.reason == "lost"]
    return {
        "batch_id": batch.batch_id,
        "status": batch.status,
        "total_tiers": batch.total_tiers,
        "has_lost_objects": bool(lost),
        "lost_count": len(lost),
        "lost_object_ids": sorted({g.root_object_id for g in lost}),
        "gap_count": len(gaps),
        "tiers": summaries,
        "rows": [g.payload() for g in gaps[:row_limit]],
        "rows_truncated": len(gaps) > row_limit,
    }
