"""Running one tier of a batch: its input rows through each of its collections.

The scheduler (engine) decides *when* a tier runs; this module decides *what*
running it means. Tier 0 reads the manifest written at submit. Tier k > 0
first builds its manifest from the documents its source collections produced
for this batch's root objects. Rows stream in chunks; each chunk goes through
`run_collection`, whose extraction step runs on the configured runner (a
process pool or Ray actors). A Ray runner with Ray Data instead runs each
collection as one pipeline over the manifest (engine/tiers/pipeline.py); its
output batches are accounted for exactly like chunks. Failures are recorded
per row; a retry round re-runs only the rows it queued.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from strataflow.blobs import BlobStore
from strataflow.config import Settings
from strataflow.engine.manifest import ManifestRow, count_rows, manifest_key, read_manifest, write_manifest
from strataflow.engine.runners import ExtractionCall, Pipelines, Runner, RunNotes
from strataflow.engine.tiers.collection_run import RunContext, run_collection
from strataflow.engine.tiers.job import TierJob, TierResult
from strataflow.engine.tiers.pipeline import PipelineStep, TierWork, pipeline_steps
from strataflow.engine.tiers.records import SourceRecord, load_document_records
from strataflow.engine.tiers.report import Tally, tier_result
from strataflow.engine.tiers.results import CollectionRunResult, RowFailure
from strataflow.engine.tiers.rows import RowStatus, classify_row
from strataflow.extractors.base import ErrorCategory, ExtractorInput, RowResult
from strataflow.extractors.limits import ExtractionLimits
from strataflow.index.store import DocumentIndex, quote_ids
from strataflow.services.batches.members import member_ids
from strataflow.services.buckets.documents import live_roots_in
from strataflow.services.documents.crud import where_of
from strataflow.services.objects.crud import OBJECT_FIELDS
from strataflow.store.db import Database
from strataflow.store.filters import compile_filters
from strataflow.store.tables import Batch, BatchObject, BatchTier, BucketObject, Collection, DocumentFailure

log = logging.getLogger("strataflow.tiers")

_ROOT_CHUNK = 500  # root object ids per index query when building a tier's manifest


def record_from_row(row: ManifestRow) -> SourceRecord:
    return SourceRecord(**row.payload)


def record_payload(record: SourceRecord) -> dict[str, Any]:
    return dataclasses.asdict(record)


class BatchTierExecutor:
    """Implements the engine's TierExecutor for batches of bucket objects."""

    def __init__(self, db: Database, blobs: BlobStore, index: DocumentIndex, runner: Runner,
                 settings: Settings) -> None:
        self.db = db
        self.blobs = blobs
        self.index = index
        self.runner = runner
        self.settings = settings

    def __call__(self, job: TierJob) -> TierResult:
        with self.db.read_session() as session:
            batch = session.get(Batch, job.batch_id)
            tier = session.get(BatchTier, (job.batch_id, job.tier_num))
            assert batch is not None and tier is not None
            collections = [c for cid in tier.collection_ids if (c := session.get(Collection, cid)) is not None]
            retry = dict(batch.internal_metadata.get("retry") or {}) if tier.retry_only else {}
            retry_rows = self._retry_rows(session, batch, tier) if tier.retry_only else None
            full_rows = tier.rows_total  # before this run reports over it (a retry round counts fewer)
            session.expunge_all()
        key = tier.manifest_key
        if tier.source_type == "collection" and (key is None or tier.retry_only):
            key = self._build_manifest(batch, tier, retry.get("root_object_ids"))
        assert key is not None
        total_rows = count_rows(self.blobs, key)
        tallies = [Tally(c.collection_id, c.feature_extractor.get("feature_extractor_name", "")) for c in collections]
        progress = {"done": 0, "rows": total_rows}  # rows: the manifest's, which each collection goes through
        expected = total_rows * len(collections)
        job.report(0, expected, {"source_documents_fetched": total_rows})

        def run_one(collection: Collection, tally: Tally) -> bool:
            wanted = retry_rows.get(collection.collection_id, set()) if retry_rows is not None else None
            return self._run_collection(job, batch, tier, collection, key, wanted, tally, progress, expected)

        with ThreadPoolExecutor(max_workers=max(1, len(collections))) as pool:
            stopped = any(list(pool.map(run_one, collections, tallies)))
        result = tier_result(tier.tier_num, tallies, total_rows, stopped)
        if retry_rows is not None:
            # A retry round ran only the failed rows; the tier's outcome is judged on all of its
            # rows against what is still unresolved, not on the handful retried.
            result.rows_total = max(full_rows, result.rows_total)
            result.rows_failed = self._unresolved(batch, tier)
        return result

    def _unresolved(self, batch: Batch, tier: BatchTier) -> int:
        with self.db.read_session() as session:
            return session.scalar(select(func.count()).where(
                DocumentFailure.batch_id == batch.batch_id, DocumentFailure.tier_num == tier.tier_num,
                DocumentFailure.resolved.is_(False))) or 0

    # -- inputs ------------------------------------------------------------------------------
    def _retry_rows(self, session: Session, batch: Batch, tier: BatchTier) -> dict[str, set[str]]:
        wanted: dict[str, set[str]] = {}
        query = select(DocumentFailure).where(
            DocumentFailure.batch_id == batch.batch_id, DocumentFailure.tier_num == tier.tier_num,
            DocumentFailure.retry_round == batch.retry_round, DocumentFailure.resolved.is_(False))
        for failure in session.scalars(query):
            wanted.setdefault(failure.collection_id, set()).add(failure.row_id)
        return wanted

    def _source_rows(self, batch: Batch, tier: BatchTier, roots: list[str]) -> Iterator[ManifestRow]:
        for collection_id in tier.source_collection_ids or []:
            if not self.index.has_table(collection_id):
                continue
            for start in range(0, len(roots), _ROOT_CHUNK):
                chunk = roots[start : start + _ROOT_CHUNK]
                where = f"root_object_id IN ({quote_ids(chunk)})"
                for record in load_document_records(self.index, collection_id, where=where):
                    yield ManifestRow(
                        row_id=record.source_id, root_object_id=str(record.lineage.get("root_object_id") or ""),
                        root_bucket_id=batch.bucket_id, source_type="collection",
                        source_document_id=record.source_id, source_collection_id=collection_id,
                        payload=record_payload(record))

    def _build_manifest(self, batch: Batch, tier: BatchTier, retry_roots: list[str] | None) -> str:
        with self.db.read_session() as session:
            roots = retry_roots if retry_roots is not None else member_ids(session, batch.batch_id)
        key = manifest_key(batch.namespace_id, batch.batch_id, tier.tier_num)
        if batch.retry_round and tier.retry_only:
            key = key.replace(".parquet", f".retry{batch.retry_round}.parquet")
        rows = write_manifest(self.blobs, key, self._source_rows(batch, tier, roots))
        with self.db.transaction() as session:
            session.execute(update(BatchTier).where(BatchTier.batch_id == batch.batch_id,
                                                    BatchTier.tier_num == tier.tier_num)
                            .values(manifest_key=key, rows_total=rows))
        return key

    # -- running -----------------------------------------------------------------------------
    def _extract_with_runner(self, config: dict[str, Any], inputs: list[ExtractorInput],
                             work_dir: Path, notes: RunNotes) -> list[RowResult]:
        call = ExtractionCall.for_extractor(config, inputs, work_dir, self.settings.device, self.settings.models_dir,
                                            ExtractionLimits.from_settings(self.settings))
        return self.runner.submit(call, notes).result()

    def _run_collection(self, job: TierJob, batch: Batch, tier: BatchTier, collection: Collection, key: str,
                        wanted: set[str] | None, tally: Tally, progress: dict[str, int], expected: int) -> bool:
        allowed = self._passing_source_filters(batch, tier, collection)
        # A runner that sees the tier stall reports it at once, on the tier and its task, then fails its rows.
        tally.notes.on_stall = lambda reason: job.report(progress["done"], expected, {"stalled": reason})
        if self.runner.pipelines is not None:  # a Ray runner with Ray Data runs whole tiers
            return self._run_pipeline(self.runner.pipelines, job, batch, tier, collection, key, (wanted, allowed), tally,
                                      progress, expected)
        context = RunContext(blobs=self.blobs, index=self.index, work_root=self.settings.work_dir,
                             limits=ExtractionLimits.from_settings(self.settings), live_roots=live_roots_in(self.db),
                             device=self.settings.device, batch_size=self.settings.extract_batch_size,
                             should_stop=job.should_stop,
                             extract=lambda config, inputs, work_dir: self._extract_with_runner(
                                 config, inputs, work_dir, tally.notes))
        for chunk in read_manifest(self.blobs, key, self.settings.manifest_chunk_rows):
            if job.should_stop():
                return True
            classified = [(row, *classify_row(row, wanted, allowed)) for row in chunk]
            kept = [row for row, status, _ in classified if status not in (RowStatus.SKIPPED, RowStatus.FILTERED)]
            filtered = sum(1 for _, status, _ in classified if status == RowStatus.FILTERED)
            records = [record_from_row(row) for row, status, _ in classified if status == RowStatus.OK]
            result = run_collection(context, collection, records) if records else CollectionRunResult(
                collection.collection_id)
            result.failures += [RowFailure(row.row_id, ErrorCategory.VALIDATION.value, message or "")
                                for row, status, message in classified if status == RowStatus.FAILED]
            step = PipelineStep(result, {r.row_id: r.root_object_id for r in kept}, filtered, len(chunk))
            self._account(job, batch, tier, collection, step, tally, progress, expected)
        return False

    def _run_pipeline(self, pipelines: Pipelines, job: TierJob, batch: Batch, tier: BatchTier,
                      collection: Collection, key: str, rows: tuple[set[str] | None, set[str] | None],
                      tally: Tally, progress: dict[str, int], expected: int) -> bool:
        """The collection as one Ray Data pipeline over the manifest; True when canceled."""
        if job.should_stop():
            return True
        wanted, allowed = rows
        if progress["rows"] == 0 or (wanted is not None and not wanted):  # nothing to run: start no dataset
            empty = PipelineStep(CollectionRunResult(collection.collection_id), consumed=progress["rows"])
            self._account(job, batch, tier, collection, empty, tally, progress, expected)
            return False
        work = TierWork(f"{batch.batch_id}-tier{tier.tier_num}-{collection.collection_id}", key,
                        frozenset(wanted) if wanted is not None else None,
                        frozenset(allowed) if allowed is not None else None)
        steps = pipeline_steps(pipelines, self.settings, self.blobs, self.index, collection, work, tally.notes,
                               live_roots_in(self.db))
        try:
            for step in steps:
                self._account(job, batch, tier, collection, step, tally, progress, expected)
                if job.should_stop():  # canceled: closing the steps stops the Ray Data execution
                    return True
        finally:
            steps.close()
        return False

    def _account(self, job: TierJob, batch: Batch, tier: BatchTier, collection: Collection, step: PipelineStep,
                 tally: Tally, progress: dict[str, int], expected: int) -> None:
        """Record one written chunk's failures, add it to the tally, and report progress."""
        result = step.result
        self._record(batch, tier, collection, step.roots, result)
        tally.rows += len(step.roots)
        tally.filtered_out += step.filtered_out
        tally.failed += len(result.failures)
        tally.missing_inputs += len(result.missing_input_ids)
        tally.documents_written += result.documents_written
        tally.prepare_ms += result.prepare_ms
        tally.extract_ms += result.extract_ms
        tally.write_ms += result.write_ms
        for failure in result.failures:
            tally.errors.setdefault(failure.error_type, []).append(failure.source_id)
            tally.messages.setdefault(failure.error_type, failure.message)
        progress["done"] += step.consumed
        running_on = {"ray_job_id": tally.notes.job_id} if tally.notes.job_id else {}
        job.report(progress["done"], expected, {"documents_written": tally.documents_written, **running_on})

    def _passing_source_filters(self, batch: Batch, tier: BatchTier, collection: Collection) -> set[str] | None:
        """Ids of this tier's input rows that pass the collection's `source_filters` (None: no filter)."""
        filters = ((collection.source or {}).get("source_filters") or {}).get("filters")
        if not filters:
            return None
        with self.db.read_session() as session:
            roots = member_ids(session, batch.batch_id)
            if tier.source_type == "bucket":
                clause = compile_filters(filters, OBJECT_FIELDS)
                query = select(BucketObject.object_id).where(
                    BucketObject.bucket_id == batch.bucket_id, BucketObject.object_id.in_(
                        select(BatchObject.object_id).where(BatchObject.batch_id == batch.batch_id)))
                return set(session.scalars(query.where(clause) if clause is not None else query))
            upstream = [c for cid in tier.source_collection_ids or [] if (c := session.get(Collection, cid))]
        passing: set[str] = set()
        for source in upstream:
            if not self.index.has_table(source.collection_id):
                continue
            where = where_of(source, filters)
            for start in range(0, len(roots), _ROOT_CHUNK):
                scope = f"root_object_id IN ({quote_ids(roots[start:start + _ROOT_CHUNK])})"
                table = self.index.select(source.collection_id, f"({where}) AND {scope}" if where else scope,
                                          {"document_id": "document_id"})
                passing.update(table.column("document_id").to_pylist())
        return passing

    def _record(self, batch: Batch, tier: BatchTier, collection: Collection, roots: dict[str, str],
                result: CollectionRunResult) -> None:
        """Upsert this chunk's failures (`roots`: its rows' root object ids); successes resolve earlier ones."""
        failed = {f.source_id: f for f in result.failures}
        with self.db.transaction() as session:
            existing = {f.row_id: f for f in session.scalars(select(DocumentFailure).where(
                DocumentFailure.batch_id == batch.batch_id, DocumentFailure.tier_num == tier.tier_num,
                DocumentFailure.collection_id == collection.collection_id,
                DocumentFailure.row_id.in_(list(roots))))}
            for row_id, root_object_id in roots.items():
                failure, known = failed.get(row_id), existing.get(row_id)
                if failure is None:
                    if known is not None:
                        known.resolved = True
                    continue
                if known is None:
                    known = DocumentFailure(batch_id=batch.batch_id, tier_num=tier.tier_num,
                                            collection_id=collection.collection_id, row_id=row_id,
                                            root_object_id=root_object_id, retry_count=0, retry_round=0)
                    session.add(known)
                known.error_type = failure.error_type
                known.message = failure.message[:4000]
                known.is_transient = failure.transient
                known.resolved = False
