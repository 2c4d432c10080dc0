"""What a batch will take, from what this deployment has measured: rows, documents, compute, wall time.

Rates are measured per extractor over the tiers that finished most recently here (any tenant: the
hardware is shared; only timings are read): extraction seconds per input row (inputs, extraction
and writes together) and documents per row. A tier's rows are the batch's objects (tier 0) or the
documents its source collection is expected to write; collections of one tier run side by side,
tiers one after another. There is no billing here: credits are 0 and dollars null.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from strataflow.index.store import DocumentIndex, quote_ids
from strataflow.services.collections.dag import resolve_tiers, scoped_tiers
from strataflow.services.collections.sources import collection_nodes, upstream_ids
from strataflow.statuses import Status
from strataflow.store.tables import Batch, BatchTier, Collection

MEASURED_TIERS = 200
_CHUNK = 500


@dataclass
class Rate:
    rows: float = 0.0
    seconds: float = 0.0
    documents: float = 0.0

    @property
    def seconds_per_row(self) -> float:
        return self.seconds / self.rows if self.rows else 0.0

    @property
    def documents_per_row(self) -> float:
        return self.documents / self.rows if self.rows else 0.0


def measured_rates(session: Session) -> dict[str, Rate]:
    """Per extractor: rows, busy seconds and documents over the most recently finished tiers."""
    query = (
        select(BatchTier.counters, BatchTier.extractor_jobs)
        .where(
            BatchTier.status.in_([Status.COMPLETED, Status.COMPLETED_WITH_ERRORS]),
            BatchTier.rows_total > 0,
        )
        .order_by(BatchTier.completed_at.desc())
        .limit(MEASURED_TIERS)
    )
    rates: dict[str, Rate] = {}
    for counters, jobs in session.execute(query):
        rows = float((counters or {}).get("source_documents_fetched") or 0)  # each collection reads every row
        for job in jobs or []:
            if not isinstance(job, dict) or not job.get("extractor_type"):
                continue
            timing = job.get("timing_ms") or {}
            busy_ms = sum(float(timing.get(k) or 0) for k in ("inputs", "extraction", "writes"))
            rate = rates.setdefault(str(job["extractor_type"]), Rate())
            rate.rows += rows
            rate.seconds += (busy_ms or float(job.get("duration_ms") or 0)) / 1000
            rate.documents += float(job.get("documents_written") or 0)
    return rates


def _extracted(index: DocumentIndex, collection_ids: list[str], object_ids: list[str]) -> int:
    """Objects that have documents in every tier-0 collection already."""
    done: set[str] | None = None
    for collection_id in collection_ids:
        found: set[str] = set()
        if index.has_table(collection_id):
            for start in range(0, len(object_ids), _CHUNK):
                where = f"root_object_id IN ({quote_ids(object_ids[start : start + _CHUNK])})"
                table = index.select(collection_id, where, {"root_object_id": "root_object_id"})
                found.update(str(v) for v in table.column("root_object_id").to_pylist())
        done = found if done is None else done & found
    return len(done or set())


def _draft_tiers(session: Session, batch: Batch) -> list[list[str]]:
    """The tiers submitting the batch would plan (bulk roots, else its creation scope)."""
    nodes = collection_nodes(session, batch.namespace_id)
    roots = (batch.internal_metadata or {}).get("root_collection_ids")
    if roots:
        return resolve_tiers(batch.bucket_id, nodes, list(roots))
    scope = list(batch.collection_scope) if batch.collection_scope is not None else None
    return scoped_tiers(batch.bucket_id, nodes, scope)


def estimate_batch(
    session: Session, index: DocumentIndex, batch: Batch, object_ids: list[str], device: str
) -> dict[str, Any]:
    tiers = batch.dag_tiers or _draft_tiers(session, batch)
    rates = measured_rates(session)
    warnings: list[str] = []
    expected_docs: dict[str, float] = {}  # per collection, what it is expected to write
    compute = wall = 0.0
    per_tier = []
    extractors: list[str] = []
    for tier_num, collection_ids in enumerate(tiers):
        tier_wall = 0.0
        entries = []
        for collection_id in collection_ids:
            collection = session.get(Collection, collection_id)
            if collection is None:
                continue
            name = str((collection.feature_extractor or {}).get("feature_extractor_name") or "unknown")
            extractors.append(name)
            sources = upstream_ids(collection)
            rows = float(len(object_ids)) if tier_num == 0 else sum(expected_docs.get(s, 0.0) for s in sources)
            rate = rates.get(name)
            if rate is None or not rate.rows:
                warnings.append(f"no measured rate for {name} on this deployment yet: run a batch through it first")
                rate = Rate()
            seconds = rows * rate.seconds_per_row
            expected_docs[collection_id] = rows * rate.documents_per_row
            compute += seconds
            tier_wall = max(tier_wall, seconds)
            entries.append(
                {
                    "collection_id": collection_id,
                    "extractor": name,
                    "rows": round(rows),
                    "expected_documents": round(expected_docs[collection_id]),
                    "seconds_per_row": round(rate.seconds_per_row, 4),
                    "compute_seconds": round(seconds, 2),
                }
            )
        wall += tier_wall
        per_tier.append({"tier_num": tier_num, "collections": entries, "wall_seconds": round(tier_wall, 2)})
    on_gpu = device.startswith("cuda")
    return {
        "batch_id": batch.batch_id,
        "collection_ids": [c for tier in tiers for c in tier],
        "dedup_strategy": batch.dedup_strategy or (batch.internal_metadata or {}).get("dedup_strategy") or "force",
        "object_count": len(object_ids),
        "already_extracted_count": _extracted(index, tiers[0], object_ids) if tiers else 0,
        "estimated_credits": 0,
        "estimated_usd": None,
        "estimated_repay_credits": 0,
        "features": sorted(set(extractors)),
        "extractors": sorted(set(extractors)),
        "content_summary": {"objects": len(object_ids)},
        "warnings": sorted(set(warnings)) + ([] if tiers else ["no enabled collection processes this bucket"]),
        "expected_documents": round(sum(expected_docs.values())),
        "cpu_seconds": 0.0 if on_gpu else round(compute, 2),
        "gpu_seconds": round(compute, 2) if on_gpu else 0.0,
        "wall_seconds": round(wall, 2),
        "tiers": per_tier,
        "measured_extractors": {k: round(v.seconds_per_row, 4) for k, v in rates.items()},
    }
