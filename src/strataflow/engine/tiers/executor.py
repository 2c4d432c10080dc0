"""Running one tier of a batch: its input rows through each of its collections.

The scheduler (engine) decides *when* a tier runs; this module decides *what*
running it means. Tier 0 first writes its manifest from the batch's member
objects (at its first start, not in the submit's transaction); tier k > 0 first
builds its manifest from the documents its source collections produced for
this batch's root objects. Rows stream in chunks; their batches of rows go
through the configured runner (a process pool or Ray actors) with one batch
extracting while the one before it is written (engine/tiers/overlap.py). A Ray runner with Ray Data instead runs each
collection as one pipeline over the manifest (engine/tiers/pipeline.py); its
output batches are accounted for exactly like chunks. Failures are recorded
per row; a retry round re-runs only the rows it queued.

Each chunk commits in one fenced transaction (engine/fencing.py): its failures,
the tier's progress, and the tier's checkpoint (per collection: which manifest
rows are done, as merged [start, end) ranges of row positions, their count, and
the sums so far). A worker that takes the tier over reads the checkpoint and
skips the done rows, so progress and `documents_written` carry on instead of
starting from 0, and no committed row is extracted again. The local path reads
the manifest in order, so its done rows are one prefix; the Ray Data path
streams batches back in no fixed order, so its done ranges may have gaps (the
batches in flight when the owner died), and its pipeline leaves the done rows
out of the dataset (engine/row_ranges.py). Writes are idempotent all the same:
a batch written but not committed is written again, over itself. Before a tier
reports success, the index must hold the documents it says it wrote.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from strataflow.blobs import BlobStore
from strataflow.config import Settings
from strataflow.engine.manifest import ManifestRow, count_rows, manifest_key, read_manifest, write_manifest
from strataflow.engine.row_ranges import RowRanges
from strataflow.engine.runners import ExtractionCall, Pipelines, Runner, RunNotes
from strataflow.engine.tiers.bucket_rows import object_rows
from strataflow.engine.tiers.collection_run import RunContext
from strataflow.engine.tiers.job import ChunkCommit, TierJob, TierResult
from strataflow.engine.tiers.overlap import ChunkDone, ChunkRun
from strataflow.engine.tiers.pipeline import PipelineStep, TierWork, pipeline_steps
from strataflow.engine.tiers.records import SourceRecord, load_document_records
from strataflow.engine.tiers.report import Tally, tier_result
from strataflow.engine.tiers.results import CollectionRunResult, RowFailure
from strataflow.engine.tiers.rows import RowStatus, classify_row
from strataflow.extractors.base import ErrorCategory, ExtractorInput, RowResult
from strataflow.extractors.limits import ExtractionLimits
from strataflow.index.store import DocumentIndex, quote_ids
from strataflow.services.batches.audit import NO_INPUT
from strataflow.services.batches.members import member_ids
from strataflow.services.buckets.documents import live_roots_in
from strataflow.services.documents.crud import where_of
from strataflow.services.objects.crud import OBJECT_FIELDS
from strataflow.services.taxonomies.materialize import CollectionEnricher, collection_enricher
from strataflow.store.db import Database
from strataflow.store.filters import compile_filters
from strataflow.store.tables import Batch, BatchObject, BatchTier, BucketObject, Collection, DocumentFailure

log = logging.getLogger("strataflow.tiers")

_ROOT_CHUNK = 500  # root object ids per index query when building a tier's manifest


def record_from_row(row: ManifestRow) -> SourceRecord:
    return SourceRecord(**row.payload)


def record_payload(record: SourceRecord) -> dict[str, Any]:
    return dataclasses.asdict(record)


@dataclasses.dataclass
class ChunkRows:
    """One manifest chunk on the local path: its rows' positions and what each row is to this collection."""

    positions: list[int]
    classified: list[tuple[ManifestRow, RowStatus, str | None]]

    def step(self, done: ChunkDone[ChunkRows]) -> PipelineStep:
        """What the tier accounts for the chunk: every row, or (a run stopped mid-chunk) only the rows
        it ran and the rows with nothing to run (skipped, filtered out, failed before extraction)."""
        taken = [
            (at, row, status, message)
            for at, (row, status, message) in zip(self.positions, self.classified, strict=True)
            if done.handled is None or status != RowStatus.OK or row.row_id in done.handled
        ]
        result = done.result
        result.failures += [
            RowFailure(row.row_id, ErrorCategory.VALIDATION.value, message or "")
            for _, row, status, message in taken
            if status == RowStatus.FAILED
        ]
        return PipelineStep(
            result,
            {
                row.row_id: row.root_object_id
                for _, row, status, _ in taken
                if status not in (RowStatus.SKIPPED, RowStatus.FILTERED)
            },
            sum(1 for _, _, status, _ in taken if status == RowStatus.FILTERED),
            len(taken),
            RowRanges.of_indices([at for at, _, _, _ in taken]),
        )


class TierIncompleteError(RuntimeError):
    """The index lacks documents the tier reports as written: the tier must not complete."""


@dataclasses.dataclass
class TierRun:
    """One run of a tier: the job, its collections' tallies, and what it has committed so far."""

    job: TierJob
    tallies: list[Tally]
    expected: int  # progress units: manifest rows × collections
    done: int = 0
    collections: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # the checkpoint
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)  # collections commit in turn
    ranges: dict[str, RowRanges] = dataclasses.field(default_factory=dict)  # the checkpoint's done rows, merged

    def done_rows(self, collection_id: str) -> RowRanges:
        """The manifest rows of `collection_id` committed so far (by this run or an earlier owner)."""
        if collection_id not in self.ranges:
            self.ranges[collection_id] = done_of(self.collections.get(collection_id, {}))
        return self.ranges[collection_id]


def done_of(state: dict[str, Any]) -> RowRanges:
    """A collection's done rows as its checkpoint says: its ranges, or (a checkpoint without
    ranges, from an earlier version) the first `rows_read` rows, which the local path reads in order."""
    if "done" in state:
        return RowRanges(state["done"])
    return RowRanges([(0, int(state.get("rows_read", 0)))])


class BatchTierExecutor:
    """Implements the engine's TierExecutor for batches of bucket objects."""

    def __init__(
        self, db: Database, blobs: BlobStore, index: DocumentIndex, runner: Runner, settings: Settings
    ) -> None:
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
            # The round's first tier re-runs its queued failed rows; the tiers after it re-run every row
            # of their retry manifest (already narrowed to the retried roots).
            first_of_round = retry.get("from_tier", tier.tier_num) == tier.tier_num
            retry_rows = self._retry_rows(session, batch, tier) if tier.retry_only and first_of_round else None
            full_rows = tier.rows_total  # before this run reports over it (a retry round counts fewer)
            session.expunge_all()
        resuming = bool(job.checkpoint.get("collections"))  # a take-over: skip the rows its owners committed
        key = tier.manifest_key
        if tier.source_type == "collection" and (key is None or (tier.retry_only and not resuming)):
            key = self._build_manifest(job, batch, tier, retry.get("root_object_ids"))
        assert key is not None
        if tier.source_type == "bucket" and self.blobs.head(key) is None:
            write_manifest(self.blobs, key, object_rows(self.db, batch))  # first start of tier 0
        total_rows = count_rows(self.blobs, key)
        run = TierRun(
            job,
            [Tally(c.collection_id, c.feature_extractor.get("feature_extractor_name", "")) for c in collections],
            total_rows * len(collections),
        )
        if resuming:
            self._resume(run, job.checkpoint["collections"])
        job.report(
            run.done,
            run.expected,
            {"source_documents_fetched": total_rows, **({"documents_written": self._written(run)} if resuming else {})},
        )

        def run_one(collection: Collection, tally: Tally) -> bool:
            wanted = retry_rows.get(collection.collection_id, set()) if retry_rows is not None else None
            return self._run_collection(run, batch, tier, collection, key, wanted, tally, total_rows)

        with ThreadPoolExecutor(max_workers=max(1, len(collections))) as pool:
            stopped = any(list(pool.map(run_one, collections, run.tallies)))
        if not stopped:
            self._verify_written(batch, tier, run.tallies, retry.get("root_object_ids") if tier.retry_only else None)
        result = tier_result(tier.tier_num, run.tallies, total_rows, stopped)
        if retry_rows is not None:
            # A retry round ran only the failed rows; the tier's outcome is judged on all of its
            # rows against what is still unresolved, not on the handful retried.
            result.rows_total = max(full_rows, result.rows_total)
            result.rows_failed = self._unresolved(batch, tier)
        return result

    @staticmethod
    def _resume(run: TierRun, saved: dict[str, Any]) -> None:
        """Carry on from the chunks an earlier owner committed: their rows are skipped, their sums kept."""
        for tally in run.tallies:
            state = saved.get(tally.collection_id)
            if state:
                tally.restore(state.get("tally") or {})
                run.collections[tally.collection_id] = copy.deepcopy(state)
                run.done += int(state.get("rows_read", 0))
        log.info("tier resumed", extra={"batch_id": run.job.batch_id, "tier": run.job.tier_num, "rows_done": run.done})

    @staticmethod
    def _written(run: TierRun) -> int:
        return sum(t.documents_written for t in run.tallies)

    def _verify_written(
        self, batch: Batch, tier: BatchTier, tallies: list[Tally], retry_roots: list[str] | None
    ) -> None:
        """Refuse to complete a tier whose documents are not all in the index.

        Documents of this batch's root objects must number at least what the tier says it
        wrote (more is fine: a row that failed this time keeps what an earlier run wrote).
        """
        with self.db.read_session() as session:
            roots = retry_roots if retry_roots is not None else member_ids(session, batch.batch_id)
        for tally in tallies:
            if tally.documents_written == 0:
                continue
            found = sum(
                self.index.count(
                    tally.collection_id, f"root_object_id IN ({quote_ids(roots[start : start + _ROOT_CHUNK])})"
                )
                for start in range(0, len(roots), _ROOT_CHUNK)
            )
            if found < tally.documents_written:
                raise TierIncompleteError(
                    f"collection {tally.collection_id}: the index holds {found} documents of this batch, "
                    f"the tier wrote {tally.documents_written}; retry the batch"
                )

    def _unresolved(self, batch: Batch, tier: BatchTier) -> int:
        with self.db.read_session() as session:
            return (
                session.scalar(
                    select(func.count()).where(
                        DocumentFailure.batch_id == batch.batch_id,
                        DocumentFailure.tier_num == tier.tier_num,
                        DocumentFailure.resolved.is_(False),
                    )
                )
                or 0
            )

    # -- inputs ------------------------------------------------------------------------------
    def _retry_rows(self, session: Session, batch: Batch, tier: BatchTier) -> dict[str, set[str]]:
        wanted: dict[str, set[str]] = {}
        query = select(DocumentFailure).where(
            DocumentFailure.batch_id == batch.batch_id,
            DocumentFailure.tier_num == tier.tier_num,
            DocumentFailure.retry_round == batch.retry_round,
            DocumentFailure.resolved.is_(False),
        )
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
                        row_id=record.source_id,
                        root_object_id=str(record.lineage.get("root_object_id") or ""),
                        root_bucket_id=batch.bucket_id,
                        source_type="collection",
                        source_document_id=record.source_id,
                        source_collection_id=collection_id,
                        payload=record_payload(record),
                    )

    def _build_manifest(self, job: TierJob, batch: Batch, tier: BatchTier, retry_roots: list[str] | None) -> str:
        with self.db.read_session() as session:
            roots = retry_roots if retry_roots is not None else member_ids(session, batch.batch_id)
        key = manifest_key(batch.namespace_id, batch.batch_id, tier.tier_num)
        if batch.retry_round and tier.retry_only:
            key = key.replace(".parquet", f".retry{batch.retry_round}.parquet")
        rows = write_manifest(self.blobs, key, self._source_rows(batch, tier, roots))
        with job.fence.transaction() as (_session, row):
            row.manifest_key, row.rows_total = key, rows
        return key

    # -- running -----------------------------------------------------------------------------
    def _submit_to_runner(
        self, config: dict[str, Any], inputs: list[ExtractorInput], work_dir: Path, notes: RunNotes
    ) -> Future[list[RowResult]]:
        call = ExtractionCall.for_extractor(
            config,
            inputs,
            work_dir,
            self.settings.device,
            self.settings.models_dir,
            ExtractionLimits.from_settings(self.settings),
        )
        return self.runner.submit(call, notes)

    def _run_collection(
        self,
        run: TierRun,
        batch: Batch,
        tier: BatchTier,
        collection: Collection,
        key: str,
        wanted: set[str] | None,
        tally: Tally,
        total_rows: int,
    ) -> bool:
        job = run.job
        allowed = self._passing_source_filters(batch, tier, collection)
        # Taxonomy applications run inside this tier's writes, so the next tier reads enriched documents.
        enrich = collection_enricher(self.db, self.index, collection)
        # A runner that sees the tier stall reports it at once, on the tier and its task, then fails its rows.
        tally.notes.on_stall = lambda reason: job.report(run.done, run.expected, {"stalled": reason})
        if self.runner.pipelines is not None:  # a Ray runner with Ray Data runs whole tiers
            return self._run_pipeline(
                self.runner.pipelines, run, batch, tier, collection, key, (wanted, allowed), tally, total_rows, enrich
            )
        context = RunContext(
            enrich=enrich,
            blobs=self.blobs,
            index=self.index,
            work_root=self.settings.work_dir,
            limits=ExtractionLimits.from_settings(self.settings),
            live_roots=live_roots_in(self.db),
            device=self.settings.device,
            batch_size=self.settings.extract_batch_size,
            should_stop=job.should_stop,
            guard=job.fence.check,
        )
        source = _ManifestChunks(self, run, collection, key, (wanted, allowed))
        chunks = ChunkRun(
            context,
            collection,
            source,
            lambda config, inputs, work_dir: self._submit_to_runner(config, inputs, work_dir, tally.notes),
        )
        steps = chunks.run()
        try:  # each chunk is accounted once written, while the next batch extracts
            for done in steps:
                self._account(run, batch, tier, collection, done.tag.step(done), tally)
        finally:
            steps.close()  # given up (a lost claim): the batch in flight is dropped, its scratch removed
        return chunks.stopped or source.stopped

    def _run_pipeline(
        self,
        pipelines: Pipelines,
        run: TierRun,
        batch: Batch,
        tier: BatchTier,
        collection: Collection,
        key: str,
        rows: tuple[set[str] | None, set[str] | None],
        tally: Tally,
        total_rows: int,
        enrich: CollectionEnricher | None = None,
    ) -> bool:
        """The collection as one Ray Data pipeline over the manifest; True when canceled."""
        job = run.job
        if job.should_stop():
            return True
        wanted, allowed = rows
        done = run.done_rows(collection.collection_id)  # committed by an earlier owner: the pipeline skips them
        left = RowRanges(done.gaps(total_rows))
        if total_rows == 0 or (wanted is not None and not wanted):  # nothing to run: start no dataset
            empty = PipelineStep(CollectionRunResult(collection.collection_id), consumed=len(left), covered=left)
            self._account(run, batch, tier, collection, empty, tally)
            return False
        if not left:  # every row committed before the owner died: only the index upkeep was left
            job.fence.check()
            if self.index.has_table(collection.collection_id):
                self.index.maintain(collection.collection_id)
            return False
        work = TierWork(
            f"{batch.batch_id}-tier{tier.tier_num}-{collection.collection_id}",
            key,
            frozenset(wanted) if wanted is not None else None,
            frozenset(allowed) if allowed is not None else None,
            RowRanges(done),  # a copy: commits merge into `done` while the pipeline runs
        )
        steps = pipeline_steps(
            pipelines,
            self.settings,
            self.blobs,
            self.index,
            collection,
            work,
            tally.notes,
            live_roots_in(self.db),
            job.fence.check,
            enrich,
        )
        try:
            for step in steps:
                self._account(run, batch, tier, collection, step, tally)
                if job.should_stop():  # canceled: closing the steps stops the Ray Data execution
                    return True
        finally:
            steps.close()
        return False

    def _account(
        self, run: TierRun, batch: Batch, tier: BatchTier, collection: Collection, step: PipelineStep, tally: Tally
    ) -> None:
        """Commit one written chunk: its failures, the tally, progress and the checkpoint, in one
        fenced transaction (LeaseLost when the tier was taken over)."""
        result = step.result
        tally.rows += len(step.roots)
        tally.filtered_out += step.filtered_out
        tally.failed += len(result.failures)
        tally.missing_inputs += len(result.missing_input_ids)
        tally.documents_written += result.documents_written
        tally.prepare_ms += result.prepare_ms
        tally.extract_ms += result.extract_ms
        tally.write_ms += result.write_ms
        for failure in result.failures:
            tally.add_failure(failure.error_type, failure.source_id, failure.message)
        running_on = {"ray_job_id": tally.notes.job_id} if tally.notes.job_id else {}
        with run.lock:
            run.done += step.consumed
            done = run.done_rows(collection.collection_id)
            done.update(step.covered)
            state = run.collections.setdefault(collection.collection_id, {"rows_read": 0})
            state["rows_read"] = int(state.get("rows_read", 0)) + step.consumed
            state["done"] = done.spans()
            state["tally"] = tally.snapshot()
            run.job.commit(
                ChunkCommit(
                    run.done,
                    run.expected,
                    {"documents_written": self._written(run), **running_on},
                    checkpoint={"collections": copy.deepcopy(run.collections)},
                    write=lambda session: self._record(session, batch, tier, collection, step.roots, result),
                )
            )

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
                    BucketObject.bucket_id == batch.bucket_id,
                    BucketObject.object_id.in_(
                        select(BatchObject.object_id).where(BatchObject.batch_id == batch.batch_id)
                    ),
                )
                return set(session.scalars(query.where(clause) if clause is not None else query))
            upstream = [c for cid in tier.source_collection_ids or [] if (c := session.get(Collection, cid))]
        passing: set[str] = set()
        for source in upstream:
            if not self.index.has_table(source.collection_id):
                continue
            where = where_of(source, filters)
            for start in range(0, len(roots), _ROOT_CHUNK):
                scope = f"root_object_id IN ({quote_ids(roots[start : start + _ROOT_CHUNK])})"
                table = self.index.select(
                    source.collection_id, f"({where}) AND {scope}" if where else scope, {"document_id": "document_id"}
                )
                passing.update(table.column("document_id").to_pylist())
        return passing

    @staticmethod
    def _record(
        session: Session,
        batch: Batch,
        tier: BatchTier,
        collection: Collection,
        roots: dict[str, str],
        result: CollectionRunResult,
    ) -> None:
        """Upsert this chunk's failures (`roots`: its rows' root object ids); successes resolve earlier ones."""
        failed = {f.source_id: f for f in result.failures}
        existing = {
            f.row_id: f
            for f in session.scalars(
                select(DocumentFailure).where(
                    DocumentFailure.batch_id == batch.batch_id,
                    DocumentFailure.tier_num == tier.tier_num,
                    DocumentFailure.collection_id == collection.collection_id,
                    DocumentFailure.row_id.in_(list(roots)),
                )
            )
        }
        no_input = set(result.missing_input_ids)
        for row_id, root_object_id in roots.items():
            failure, known = failed.get(row_id), existing.get(row_id)
            if failure is None and row_id in no_input:
                # Not a failure (resolved from the start), but the audit must tell "no input" from "lost".
                known = known or _ledger_row(batch, tier, collection, row_id, root_object_id, session)
                known.error_type, known.message, known.is_transient = NO_INPUT, "no input for this collection", False
                known.resolved = True
                continue
            if failure is None:
                if known is not None:
                    known.resolved = True
                continue
            if known is None:
                known = _ledger_row(batch, tier, collection, row_id, root_object_id, session)
            known.error_type = failure.error_type
            known.message = failure.message[:4000]
            known.is_transient = failure.transient
            known.resolved = False


class _ManifestChunks:
    """A collection's manifest chunks on the local path, less the rows committed by an earlier owner;
    ends early when the tier is canceled (`stopped`)."""

    def __init__(
        self,
        executor: BatchTierExecutor,
        run: TierRun,
        collection: Collection,
        key: str,
        rows: tuple[set[str] | None, set[str] | None],
    ) -> None:
        self.executor, self.run, self.collection, self.key, self.rows = executor, run, collection, key, rows
        self.stopped = False

    def __iter__(self) -> Iterator[tuple[ChunkRows, list[SourceRecord]]]:
        wanted, allowed = self.rows
        done = self.run.done_rows(self.collection.collection_id)  # committed by an earlier owner of the tier
        settings = self.executor.settings
        end = 0
        for whole in read_manifest(self.executor.blobs, self.key, settings.manifest_chunk_rows):
            start, end = end, end + len(whole)  # the chunk's rows are positions [start, end) of the manifest
            positions = [at for at in range(start, end) if at not in done]
            if not positions:
                continue
            if self.run.job.should_stop():
                self.stopped = True
                return
            chunk = [whole[at - start] for at in positions]
            classified = [(row, *classify_row(row, wanted, allowed)) for row in chunk]
            records = [record_from_row(row) for row, status, _ in classified if status == RowStatus.OK]
            yield ChunkRows(positions, classified), records


def _ledger_row(
    batch: Batch, tier: BatchTier, collection: Collection, row_id: str, root_object_id: str, session: Session
) -> DocumentFailure:
    row = DocumentFailure(
        batch_id=batch.batch_id,
        tier_num=tier.tier_num,
        collection_id=collection.collection_id,
        row_id=row_id,
        root_object_id=root_object_id,
        retry_count=0,
        retry_round=0,
    )
    session.add(row)
    return row
