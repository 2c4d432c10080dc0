"""The extraction stage of a tier's Ray Data pipeline: manifest rows in, per-row outcomes out.

Runs inside a Ray Data actor (one instance per actor, so the extractor's models
stay loaded between batches) and knows nothing of Ray. For each manifest row it
decides, with the local path's classifier (engine/tiers/rows.py), whether the row is this round's work (retry
rounds run only their failed rows), passes the collection's source filters,
still has its object, and has the collection's input; then it prepares the
inputs (reading blobs from the blob store it opens itself) and extracts.

Every row comes back as data (ok, failed with category and message, skipped,
filtered, missing input), never as an exception, so one bad document cannot
fail the tier. A succeeded row carries its extracted documents, pickled, with
the files an extractor made inlined as bytes: the worker may be on another
host, and its scratch directory is gone when the batch ends. Every output row
carries its input row's position in the manifest (ROW_INDEX), by which the
driver checkpoints the rows that are done.
"""

from __future__ import annotations

import logging
import pickle
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from strataflow.blobs.stores import open_blob_store
from strataflow.config import Settings
from strataflow.engine.manifest import ROW_INDEX, ManifestRow
from strataflow.engine.runners.base import ExtractionCall
from strataflow.engine.runners.isolation import isolate, needs_isolation
from strataflow.engine.runners.worker import run_extraction
from strataflow.engine.tiers.collection_run import CollectionSpec, plan_inputs, prepare_inputs
from strataflow.engine.tiers.records import SourceRecord
from strataflow.engine.tiers.results import CollectionRunResult
from strataflow.engine.tiers.rows import RowStatus, classify_row
from strataflow.extractors.base import DocumentBlob, ErrorCategory, ExtractedDocument, ExtractionError, RowResult
from strataflow.extractors.limits import ExtractionLimits

log = logging.getLogger("strataflow.ray_data")


OUTPUT_SCHEMA = pa.schema(
    [
        ("row_id", pa.string()),
        ("root_object_id", pa.string()),
        ("status", pa.string()),
        ("error_type", pa.string()),
        ("error_message", pa.string()),
        ("record", pa.string()),  # the row's source record (JSON), for the driver's document builder; ok rows only
        ("documents", pa.binary()),  # pickled list[ExtractedDocument], files inlined; ok rows only
        ("prepare_ms", pa.float64()),
        ("extract_ms", pa.float64()),  # the batch's timings, on its first row
        (ROW_INDEX, pa.int64()),  # the input row's position in the manifest
    ]
)


def _manifest_row(record: dict[str, Any]) -> tuple[ManifestRow, int | None]:
    """A manifest row as the pipeline hands it in, and its position in the manifest."""
    values = dict(record)
    position = values.pop(ROW_INDEX, None)
    return ManifestRow.from_record(values), position


@dataclass(frozen=True)
class ShippedBlob:
    """A file an extractor made, carried as bytes back to the driver."""

    field: str
    filename: str
    role: str
    type: str
    content_type: str | None
    data: bytes


@dataclass(frozen=True)
class ShippedDocument:
    """An extracted document without its files, and the files as bytes."""

    document: ExtractedDocument
    blobs: list[ShippedBlob]


def pack_documents(documents: list[ExtractedDocument]) -> bytes:
    shipped = [
        ShippedDocument(
            replace(doc, blobs=[]),
            [ShippedBlob(b.field, b.path.name, b.role, b.type, b.content_type, b.path.read_bytes()) for b in doc.blobs],
        )
        for doc in documents
    ]
    return pickle.dumps(shipped, protocol=pickle.HIGHEST_PROTOCOL)


def unpack_documents(data: bytes, work_dir: Path) -> list[ExtractedDocument]:
    """The extracted documents, their files written back to disk under `work_dir` for the builder."""
    shipped_documents: list[ShippedDocument] = pickle.loads(data)  # our own bytes, from our own cluster
    documents: list[ExtractedDocument] = []
    for position, shipped_document in enumerate(shipped_documents):
        blobs: list[DocumentBlob] = []
        for number, shipped in enumerate(shipped_document.blobs):
            path = work_dir / f"{position}-{number}" / shipped.filename
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(shipped.data)
            blobs.append(DocumentBlob(shipped.field, path, shipped.role, shipped.type, shipped.content_type))
        documents.append(replace(shipped_document.document, blobs=blobs))
    return documents


class ExtractionStage:
    """One collection's extraction, as a Ray Data callable class (see the module doc)."""

    def __init__(
        self,
        settings: Settings,
        spec: CollectionSpec,
        wanted: frozenset[str] | None,
        allowed: frozenset[str] | None,
        on_gpu: bool = False,
    ) -> None:
        self.settings = settings
        self.spec = spec
        self.wanted = wanted
        self.allowed = allowed
        self.device = "cuda" if on_gpu else settings.device
        self.plan = plan_inputs(spec)
        self.blobs = open_blob_store(settings)

    @staticmethod
    def unrun(wanted: frozenset[str] | None, allowed: frozenset[str] | None, batch: pa.Table, reason: str) -> pa.Table:
        """Output rows for manifest rows that will not run here (the tier stalled): this round's rows
        that pass the filters (engine/tiers/rows.py) fail with `reason` as a transient resource error,
        which a retry re-runs."""
        out = []
        for record in batch.to_pylist():
            manifest_row, position = _manifest_row(record)
            status, message = classify_row(manifest_row, wanted, allowed)
            row = {
                "row_id": record["row_id"],
                "root_object_id": record["root_object_id"],
                "status": status.value,
                ROW_INDEX: position,
            }
            if message is not None:  # failed before extraction (its object is gone): as the stage would say
                row.update(error_type=ErrorCategory.VALIDATION.value, error_message=message)
            elif status == RowStatus.OK:
                row.update(
                    status=RowStatus.FAILED.value, error_type=ErrorCategory.RESOURCE.value, error_message=reason[:2000]
                )
            out.append(row)
        return pa.Table.from_pylist(out, schema=OUTPUT_SCHEMA)

    def __call__(self, batch: pa.Table) -> pa.Table:
        raw = batch.to_pylist()
        rows = [_manifest_row(r) for r in raw]
        payloads = {r["row_id"]: r["payload"] for r in raw}  # the record as the manifest holds it (JSON)
        out: dict[str, dict[str, Any]] = {}
        records: dict[str, SourceRecord] = {}
        for row, position in rows:
            status, message = classify_row(row, self.wanted, self.allowed)
            out[row.row_id] = {
                "row_id": row.row_id,
                "root_object_id": row.root_object_id,
                "status": status.value,
                ROW_INDEX: position,
            }
            if message is not None:
                out[row.row_id].update(error_type=ErrorCategory.VALIDATION.value, error_message=message)
            elif status == RowStatus.OK:
                records[row.row_id] = SourceRecord(**row.payload)
        result = CollectionRunResult(self.spec.collection_id)
        work_dir = Path(tempfile.mkdtemp(prefix=f"{self.spec.collection_id}-"))
        try:
            clock = time.monotonic()
            inputs = prepare_inputs(
                self.plan,
                list(records.values()),
                self.blobs,
                work_dir / "rows",
                result,
                ExtractionLimits.from_settings(self.settings),
            )
            prepare_ms, clock = (time.monotonic() - clock) * 1000, time.monotonic()
            outcomes = self._extract(inputs, work_dir / "extract") if inputs else []
            extract_ms = (time.monotonic() - clock) * 1000
            for row_id in result.missing_input_ids:
                out[row_id]["status"] = RowStatus.MISSING_INPUT.value
            for failure in result.failures:
                out[failure.source_id].update(
                    status=RowStatus.FAILED.value, error_type=failure.error_type, error_message=failure.message
                )
            for outcome in outcomes:
                out[outcome.row_id].update(self._outcome_columns(outcome, payloads[outcome.row_id]))
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
        failed = sum(1 for r in out.values() if r["status"] == RowStatus.FAILED.value)
        log.info("%s: %d rows, %d extracted, %d failed", self.spec.collection_id, len(rows), len(outcomes), failed)
        table = list(out.values())
        if table:
            table[0].update(prepare_ms=prepare_ms, extract_ms=extract_ms)
        return pa.Table.from_pylist(table, schema=OUTPUT_SCHEMA)

    def poisoned(self, batch: pa.Table, message: str) -> pa.Table:
        """The output for rows that must not run again: they killed their worker (the Ray side decides)."""
        rows = [
            {
                "row_id": r["row_id"],
                "root_object_id": r["root_object_id"],
                "status": RowStatus.FAILED.value,
                "error_type": ErrorCategory.VALIDATION.value,
                "error_message": message,
                ROW_INDEX: r.get(ROW_INDEX),
            }
            for r in batch.to_pylist()
        ]
        return pa.Table.from_pylist(rows, schema=OUTPUT_SCHEMA)

    def _extract(self, inputs: list[Any], work_dir: Path) -> list[RowResult]:
        call = ExtractionCall.for_extractor(
            self.spec.feature_extractor,
            inputs,
            work_dir,
            self.device,
            self.settings.models_dir,
            ExtractionLimits.from_settings(self.settings),
        )
        try:
            results = run_extraction(call)
        except Exception as exc:  # an extractor bug fails the batch's rows, never the tier
            log.exception("extractor failed", extra={"collection_id": self.spec.collection_id})
            error = ExtractionError(ErrorCategory.RUNTIME, f"{type(exc).__name__}: {exc}"[:2000])
            return [RowResult(row.row_id, error=error) for row in inputs]
        if needs_isolation(results):  # rows out of memory: each runs again on its own, here
            return isolate(inputs, results, lambda rows: run_extraction(replace(call, inputs=rows)))
        return results

    @staticmethod
    def _outcome_columns(outcome: RowResult, payload: str) -> dict[str, Any]:
        if outcome.error is not None:
            return {
                "status": RowStatus.FAILED.value,
                "error_type": outcome.error.category.value,
                "error_message": outcome.error.message,
            }
        try:
            documents = pack_documents(outcome.documents)
        except OSError as exc:  # a file the extractor named is gone: the row fails, not the batch
            return {
                "status": RowStatus.FAILED.value,
                "error_type": ErrorCategory.RUNTIME.value,
                "error_message": f"an extracted file could not be read ({exc.strerror or type(exc).__name__})",
            }
        return {"record": payload, "documents": documents}
