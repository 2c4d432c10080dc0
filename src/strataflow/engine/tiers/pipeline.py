"""The driver side of a tier's Ray Data pipeline: output batches in, documents written.

The pipeline (engine/runners/ray_data.py) reads the tier's manifest and runs
the extraction stage (engine/tiers/stage.py) on the cluster. Output
batches come back here, to the scheduler process, which builds the documents
and writes them with the same builder and index writer as `run_collection`.

Writes stay here on purpose: LanceDB takes one writer per table at a time (a
file lock on one host, commit conflicts on S3), and the tier's bookkeeping
(failures, progress, the lease) lives with the scheduler; workers that wrote
on their own would race each other and report what they wrote after the fact.

Output batches come back in no fixed order; each says which manifest rows it
covered (their positions, ROW_INDEX), and the tier checkpoints those ranges
with the batch. A worker that takes the tier over passes the done ranges in
(`TierWork.done`): the pipeline never reads those rows, so they are not
extracted or written again.
"""

from __future__ import annotations

import json
import logging
import pickle
import shutil
import tempfile
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa

from strataflow.blobs import BlobStore
from strataflow.config import Settings
from strataflow.engine.manifest import ROW_INDEX
from strataflow.engine.row_ranges import RowRanges
from strataflow.engine.runners.base import Pipelines, RunNotes
from strataflow.engine.tiers.collection_run import CollectionSpec, document_builder, plan_inputs, write_outcomes
from strataflow.engine.tiers.records import SourceRecord
from strataflow.engine.tiers.results import CollectionRunResult, RowFailure
from strataflow.engine.tiers.rows import RowStatus
from strataflow.engine.tiers.stage import ExtractionStage, unpack_documents
from strataflow.extractors.base import ErrorCategory, ExtractionError, Resources, RowResult
from strataflow.extractors.registry import get_extractor
from strataflow.index.records import StoredDocument
from strataflow.index.store import DocumentIndex
from strataflow.services.buckets.documents import LiveRoots
from strataflow.store.tables import Collection

log = logging.getLogger("strataflow.tiers")


@dataclass
class PipelineStep:
    """One output batch of the pipeline, written: what the tier accounts for it."""

    result: CollectionRunResult
    roots: dict[str, str] = field(default_factory=dict)  # this round's rows that passed the filters -> root ids
    filtered_out: int = 0
    consumed: int = 0  # manifest rows the batch covered, whatever became of them (progress)
    covered: RowRanges = field(default_factory=RowRanges)  # which rows those were (the checkpoint)


@dataclass(frozen=True)
class TierWork:
    """Which rows of which manifest one collection runs."""

    name: str
    manifest_key: str
    wanted: frozenset[str] | None  # a retry round's rows; None: every row
    allowed: frozenset[str] | None  # rows passing the source filters; None: no filter
    done: RowRanges = field(default_factory=RowRanges)  # rows an earlier owner committed: not run again


def pipeline_steps(
    pipelines: Pipelines,
    settings: Settings,
    blobs: BlobStore,
    index: DocumentIndex,
    collection: Collection,
    work: TierWork,
    notes: RunNotes,
    live_roots: LiveRoots | None = None,
    guard: Callable[[], None] | None = None,
    enrich: Callable[[list[StoredDocument]], None] | None = None,
) -> Generator[PipelineStep]:
    """Run the collection's pipeline; yield each output batch once its documents are written.

    Closing the iterator early (a canceled tier) stops the Ray Data execution. `guard` runs
    around every index write and raises once the tier's claim is lost (engine/fencing.py).
    """
    from strataflow.engine.runners.ray_data import Pipeline  # imported here: only a Ray runner gets here

    spec = CollectionSpec.of(collection)
    plan = plan_inputs(spec)
    builder = document_builder(collection, plan, blobs)
    builder.enrich = enrich
    config = collection.feature_extractor
    resources: Resources = get_extractor(config["feature_extractor_name"], config["version"]).resources
    # Workers open the blob store themselves from these settings: absolute paths, whatever their cwd,
    # and nothing they do not need (the admin key stays here; the S3 keys must travel).
    shipped = settings.model_copy(update={"data_dir": settings.data_dir.resolve(), "api_key": None})
    pipeline = Pipeline(
        name=work.name,
        settings=shipped,
        blobs=blobs,
        manifest_key=work.manifest_key,
        stage=ExtractionStage,
        stage_kwargs={"settings": shipped, "spec": spec, "wanted": work.wanted, "allowed": work.allowed},
        resources=resources,
        batch_size=settings.extract_batch_size,
        extractor={
            "name": config["feature_extractor_name"],
            "version": config["version"],
            "parameters": config.get("parameters") or {},
        },
        unrun=partial(ExtractionStage.unrun, work.wanted, work.allowed),
        done=work.done,
    )
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    for batch in pipelines.run(pipeline, notes):
        yield _write_batch(batch, builder, index, settings.work_dir, collection.collection_id, live_roots, guard)
    if guard is not None:
        guard()
    index.maintain(collection.collection_id)


def _write_batch(
    batch: pa.Table,
    builder: Any,
    index: DocumentIndex,
    work_root: Path,
    collection_id: str,
    live_roots: LiveRoots | None,
    guard: Callable[[], None] | None = None,
) -> PipelineStep:
    step = PipelineStep(
        CollectionRunResult(collection_id),
        consumed=batch.num_rows,
        covered=RowRanges.of_indices(batch.column(ROW_INDEX).to_pylist()),
    )
    result = step.result
    rows = batch.to_pylist()
    result.prepare_ms = sum(r["prepare_ms"] or 0.0 for r in rows)
    result.extract_ms = sum(r["extract_ms"] or 0.0 for r in rows)
    clock = time.monotonic()
    records: dict[str, SourceRecord] = {}
    outcomes: list[RowResult] = []
    work_dir = Path(tempfile.mkdtemp(prefix=f"{collection_id}-out-", dir=work_root))
    try:
        for row in rows:
            status = RowStatus(row["status"])
            if status == RowStatus.SKIPPED:
                continue
            if status == RowStatus.FILTERED:
                step.filtered_out += 1
                continue
            step.roots[row["row_id"]] = row["root_object_id"]
            if status == RowStatus.MISSING_INPUT:
                result.missing_input_ids.append(row["row_id"])
            elif status == RowStatus.FAILED:
                result.failures.append(RowFailure(row["row_id"], row["error_type"], row["error_message"] or ""))
            else:
                records[row["row_id"]] = SourceRecord(**json.loads(row["record"]))
                outcomes.append(_outcome(row, work_dir / str(len(outcomes))))
        result.rows_processed = len(step.roots)
        write_outcomes(index, builder, records, outcomes, result, live_roots, guard)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    result.write_ms = (time.monotonic() - clock) * 1000
    return step


def _outcome(row: dict[str, Any], work_dir: Path) -> RowResult:
    try:
        return RowResult(row["row_id"], documents=unpack_documents(row["documents"], work_dir))
    except (pickle.UnpicklingError, EOFError, OSError) as exc:  # unreadable output fails its row, not the tier
        log.warning("a worker's output could not be read", exc_info=exc)
        error = ExtractionError(ErrorCategory.RUNTIME, f"the worker's output could not be read ({type(exc).__name__})")
        return RowResult(row["row_id"], error=error)
