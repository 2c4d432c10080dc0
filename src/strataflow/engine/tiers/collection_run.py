"""The parts of running one collection over source records: its plan, inputs, documents, writes.

The batch engine's driver (`overlap.ChunkRun`, and `overlap.run_collection` in one process)
resolves each record's inputs here, calls the extractor on a batch of rows, turns its output
into documents with lineage and passthrough fields, and writes them to the index. Document ids are
derived from (collection, source, position), so running the same records
again overwrites instead of duplicating; documents a source no longer yields
(a shorter text has fewer chunks) are removed. A row that fails is reported
and leaves its earlier documents as they were.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strataflow.blobs import BlobStore
from strataflow.config import Settings
from strataflow.engine.tiers.outputs import DocumentBuilder
from strataflow.engine.tiers.records import SourceRecord, input_value
from strataflow.engine.tiers.results import CollectionRunResult, RowFailure
from strataflow.extractors.base import ErrorCategory, ExtractionError, ExtractorInput, RowResult
from strataflow.extractors.limits import ExtractionLimits
from strataflow.extractors.registry import get_extractor, parse_parameters, vector_storage_name
from strataflow.index.records import StoredDocument, timestamp
from strataflow.index.store import DocumentIndex
from strataflow.services.buckets.documents import OBJECT_DELETED, LiveRoots, remove_documents_of_objects
from strataflow.services.collections import schema
from strataflow.store.tables import Collection

log = logging.getLogger("strataflow.runner")


ExtractFunction = Callable[[dict[str, Any], list[ExtractorInput], Path], list[RowResult]]


@dataclass
class RunContext:
    """What a run needs from its surroundings."""

    blobs: BlobStore
    index: DocumentIndex
    work_root: Path
    device: str = "cpu"
    batch_size: int = 256  # source rows handed to the extractor per call
    should_stop: Callable[[], bool] = lambda: False
    # Where extraction runs. None: in this process. The batch engine passes its runner
    # (a process pool or Ray), which receives the extractor's name, version and raw parameters.
    extract: ExtractFunction | None = None
    limits: ExtractionLimits = field(default_factory=ExtractionLimits)  # the operator's caps on one row
    live_roots: LiveRoots | None = None  # which objects still exist: nothing is written for a deleted one
    # The collection's taxonomy applications, run over each chunk of documents before it is written.
    enrich: Callable[[list[StoredDocument]], None] | None = None
    # Called before and after every index write; raises when the caller may no longer write
    # (the batch engine: its claim of the tier was taken over, engine/fencing.py).
    guard: Callable[[], None] | None = None

    @classmethod
    def from_settings(cls, blobs: BlobStore, index: DocumentIndex, settings: Settings, **options: Any) -> RunContext:
        """The usual context: scratch space under the data dir (`settings.work_dir`)."""
        return cls(
            blobs=blobs,
            index=index,
            work_root=settings.work_dir,
            limits=ExtractionLimits.from_settings(settings),
            **options,
        )


def parameters_hash(collection: Collection) -> str:
    config = collection.feature_extractor
    material = {
        k: config.get(k) for k in ("parameters", "input_mappings", "field_passthrough", "include_all_source_fields")
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CollectionSpec:
    """What preparing a collection's inputs needs: plain data, so it can travel to a Ray worker."""

    collection_id: str
    feature_extractor: dict[str, Any]
    input_schema: dict[str, Any]
    source_type: str  # "bucket" | "collection"

    @classmethod
    def of(cls, collection: Collection) -> CollectionSpec:
        return cls(
            collection.collection_id,
            dict(collection.feature_extractor),
            dict(collection.input_schema or {}),
            # A taxonomy source reads upstream documents exactly as a collection source does.
            "bucket" if (collection.source or {}).get("type") == "bucket" else "collection",
        )


@dataclass
class InputPlan:
    """The extractor of a collection and where each of its inputs comes from."""

    spec: CollectionSpec
    extractor: Any
    params: Any
    mappings: list[schema.ResolvedInput]
    required: frozenset[str]


def plan_inputs(spec: CollectionSpec) -> InputPlan:
    config = spec.feature_extractor
    extractor = get_extractor(config["feature_extractor_name"], config["version"])
    params = parse_parameters(extractor, config.get("parameters"))
    from_bucket = spec.source_type == "bucket"
    mappings = schema.resolve_input_mappings(
        extractor,
        config.get("input_mappings") or {},
        spec.input_schema,
        from_bucket=from_bucket,
        vector_names=schema.vector_fields_of(spec.input_schema),
    )
    required = frozenset(field.name for field in extractor.inputs if field.required)
    return InputPlan(spec, extractor, params, mappings, required)


def document_builder(collection: Collection, plan: InputPlan, blobs: BlobStore) -> DocumentBuilder:
    """The one builder of a collection's documents, whichever runner extracted them."""
    extractor, config = plan.extractor, collection.feature_extractor
    produced = set() if extractor.copies_source else {f.name for f in extractor.output_fields(plan.params)}
    storage_names = {d["index"]["name"] for d in collection.vector_indexes}
    vector_map = {spec.name: vector_storage_name(extractor, spec) for spec in extractor.vector_indexes(plan.params)}
    passthrough = schema.resolve_passthrough(
        config.get("field_passthrough") or [],
        collection.input_schema,
        produced | storage_names,
        from_bucket=plan.spec.source_type == "bucket",
    )
    return DocumentBuilder(
        collection,
        extractor.extractor_id,
        parameters_hash(collection),
        passthrough,
        bool(config.get("include_all_source_fields")),
        produced,
        vector_map,
        storage_names,
        blobs,
    )


def prepare_inputs(
    plan: InputPlan,
    records: list[SourceRecord],
    blobs: BlobStore,
    work_dir: Path,
    result: CollectionRunResult,
    limits: ExtractionLimits | None = None,
) -> list[ExtractorInput]:
    """The extractor inputs of `records`; rows that cannot be prepared go to `result` (failed or missing input)."""
    inputs: list[ExtractorInput] = []
    for record in records:
        try:
            values = {
                m.input_key: input_value(record, m, blobs, work_dir, limits or ExtractionLimits())
                for m in plan.mappings
            }
        except ExtractionError as error:
            result.failures.append(RowFailure(record.source_id, error.category.value, error.message))
            continue
        absent = [k for k, v in values.items() if v is None]
        if values and (len(absent) == len(values) or any(k in plan.required for k in absent)):
            result.missing_input_ids.append(record.source_id)
            continue
        source = {
            "type": record.source_type,
            "id": record.source_id,
            "container_id": record.container_id,
            "fields": record.fields,
            "vectors": record.vectors,
        }
        inputs.append(ExtractorInput(row_id=record.source_id, values=values, source=source))
    result.rows_processed += len(records)
    return inputs


def write_outcomes(
    index: DocumentIndex,
    builder: DocumentBuilder,
    records: dict[str, SourceRecord],
    outcomes: list[RowResult],
    result: CollectionRunResult,
    live_roots: LiveRoots | None = None,
    guard: Callable[[], None] | None = None,
) -> None:
    """Build documents from extractor outcomes and write them; failed rows go to `result`.

    Each succeeded source's documents replace what it had before (stale chunks go), so a
    re-run overwrites instead of doubling. `records` holds the source record of every outcome.
    With `live_roots`, rows whose object was deleted are not written (asked right before the
    write), and documents of an object deleted during the write are removed right after it.
    `guard` runs before and after the write: a writer that lost its claim stops there.
    """
    if live_roots is not None:
        outcomes = _drop_deleted(outcomes, records, live_roots, result)
    documents: list[StoredDocument] = []
    succeeded: list[str] = []
    now = timestamp()
    for outcome in outcomes:
        if outcome.error is not None:
            result.failures.append(RowFailure(outcome.row_id, outcome.error.category.value, outcome.error.message))
            continue
        try:
            documents += builder.build(records[outcome.row_id], outcome.documents, now)
        except ExtractionError as error:
            result.failures.append(RowFailure(outcome.row_id, error.category.value, error.message))
            continue
        succeeded.append(outcome.row_id)
    if not outcomes:
        return
    if documents and builder.enrich is not None:
        builder.enrich(documents)  # after extraction, in the same write: never stored half-enriched
    source_type = records[outcomes[0].row_id].source_type
    column = "source_object_id" if source_type == "bucket" else "source_document_id"
    collection_id = builder.collection.collection_id
    if guard is not None:
        guard()
    result.stale_documents_removed += index.replace_sources(collection_id, documents, column, succeeded)
    if live_roots is not None:
        documents = _clean_up_raced_deletes(index, builder, documents, live_roots, result)
    if guard is not None:
        guard()  # lost meanwhile: what we wrote is what the new owner writes; we stop before reporting it
    result.documents_written += len({d.document_id for d in documents})  # an id given twice is one document
    result.document_ids += [d.document_id for d in documents]


def _root_of(record: SourceRecord) -> str:
    return record.source_id if record.source_type == "bucket" else str(record.lineage.get("root_object_id") or "")


def _drop_deleted(
    outcomes: list[RowResult], records: dict[str, SourceRecord], live_roots: LiveRoots, result: CollectionRunResult
) -> list[RowResult]:
    roots = {_root_of(records[o.row_id]) for o in outcomes if o.error is None}
    alive = live_roots(roots)
    kept = []
    for outcome in outcomes:
        if outcome.error is None and _root_of(records[outcome.row_id]) not in alive:
            result.failures.append(RowFailure(outcome.row_id, ErrorCategory.VALIDATION.value, OBJECT_DELETED))
        else:
            kept.append(outcome)
    return kept


def _clean_up_raced_deletes(
    index: DocumentIndex,
    builder: DocumentBuilder,
    documents: list[StoredDocument],
    live_roots: LiveRoots,
    result: CollectionRunResult,
) -> list[StoredDocument]:
    """A delete that landed between the check and the write: its documents go now, and their rows fail."""
    roots = {str(d.lineage.get("root_object_id") or "") for d in documents}
    gone = roots - live_roots(roots)
    if not gone:
        return documents
    log.info(
        "objects deleted during the write: removing their documents",
        extra={"collection_id": builder.collection.collection_id, "object_ids": sorted(gone)[:20]},
    )
    remove_documents_of_objects(index, builder.blobs, [builder.collection.collection_id], gone)
    rows = {
        d.lineage.get("source_object_id") or d.lineage.get("source_document_id")
        for d in documents
        if d.lineage.get("root_object_id") in gone
    }
    result.failures += [RowFailure(str(row), ErrorCategory.VALIDATION.value, OBJECT_DELETED) for row in rows if row]
    return [d for d in documents if d.lineage.get("root_object_id") not in gone]
