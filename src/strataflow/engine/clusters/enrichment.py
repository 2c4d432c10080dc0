"""Writing a run's results onto the source documents (enrich_source_collection).

Each document of the run gets the mapped fields (cluster id, label, distance, ...) in its payload,
and `_internal.clusters[cluster_id] = run_id` records which run wrote them. Documents the previous
run enriched but this one did not cluster lose those fields, so a document carries exactly one
run's values. Applying the same run twice writes the same values (a re-run job is harmless);
applying the previous run again is how a failed or canceled finish is rolled back.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from strataflow.blobs import BlobStore
from strataflow.index.store import DocumentIndex
from strataflow.services.clusters.artifact import NOISE, read_batches

BATCH = 500


@dataclass(frozen=True)
class EnrichmentSpec:
    """What one run writes: its artifact, its group labels and keywords, the field mapping."""

    cluster_id: str
    run_id: str
    artifact_key: str
    labels: dict[str, str]
    keywords: dict[str, list[str]]
    mappings: list[dict[str, str]]


def _values(spec: EnrichmentSpec, group: str, distance: float | None) -> dict[str, Any]:
    source = {
        "cluster_id": group,
        "cluster_label": spec.labels.get(group, "Noise" if group == NOISE else group),
        "distance_to_centroid": distance,
        "run_id": spec.run_id,
        "keywords": spec.keywords.get(group, []),
    }
    return {m["target_field"]: source[m["source_field"]] for m in spec.mappings}


def apply(
    index: DocumentIndex,
    blobs: BlobStore,
    spec: EnrichmentSpec,
    previous: EnrichmentSpec | None,
    keep_alive: Callable[[], None],
) -> int:
    """Enrich with `spec`, then clear `previous`'s fields from documents `spec` did not cover."""
    written: dict[str, set[str]] = defaultdict(set)
    pending: dict[str, list[tuple[str, str, float | None]]] = defaultdict(list)
    count = 0
    for batch in read_batches(
        blobs, spec.artifact_key, ["document_id", "collection_id", "cluster_id", "distance_to_centroid"]
    ):
        rows = batch.to_pydict()
        for doc, col, group, dist in zip(
            rows["document_id"], rows["collection_id"], rows["cluster_id"], rows["distance_to_centroid"], strict=True
        ):
            pending[col].append((doc, group, dist))
            written[col].add(doc)
            if len(pending[col]) >= BATCH:
                count += _write(index, col, pending.pop(col), spec)
                keep_alive()
    for col, items in pending.items():
        count += _write(index, col, items, spec)
    if previous is not None and previous.artifact_key != spec.artifact_key:
        _clear_stale(index, blobs, previous, written, {m["target_field"] for m in previous.mappings}, keep_alive)
    return count


def _write(
    index: DocumentIndex, collection_id: str, items: list[tuple[str, str, float | None]], spec: EnrichmentSpec
) -> int:
    by_id = {doc: (group, dist) for doc, group, dist in items}
    documents = index.get_many(collection_id, list(by_id), with_vectors=True)  # an upsert rewrites whole rows
    for document in documents:
        group, dist = by_id[document.document_id]
        document.payload.update(_values(spec, group, dist))
        document.internal.setdefault("clusters", {})[spec.cluster_id] = spec.run_id
    return index.upsert(collection_id, documents)


def clear(index: DocumentIndex, blobs: BlobStore, spec: EnrichmentSpec, keep_alive: Callable[[], None]) -> None:
    """Remove one run's fields from every document it enriched (and that no later run rewrote)."""
    _clear_stale(index, blobs, spec, {}, {m["target_field"] for m in spec.mappings}, keep_alive)


def _clear_stale(
    index: DocumentIndex,
    blobs: BlobStore,
    previous: EnrichmentSpec,
    written: dict[str, set[str]],
    fields: set[str],
    keep_alive: Callable[[], None],
) -> None:
    stale: dict[str, list[str]] = defaultdict(list)
    for batch in read_batches(blobs, previous.artifact_key, ["document_id", "collection_id"]):
        rows = batch.to_pydict()
        for doc, col in zip(rows["document_id"], rows["collection_id"], strict=True):
            if doc not in written.get(col, set()):
                stale[col].append(doc)
    for col, ids in stale.items():
        if not index.has_table(col):
            continue
        for start in range(0, len(ids), BATCH):
            documents = index.get_many(col, ids[start : start + BATCH], with_vectors=True)
            changed = []
            for document in documents:
                marks = document.internal.get("clusters") or {}
                if marks.get(previous.cluster_id) != previous.run_id:
                    continue  # another run wrote it since: not ours to clear
                for name in fields:
                    document.payload.pop(name, None)
                marks.pop(previous.cluster_id, None)
                changed.append(document)
            index.upsert(col, changed)
            keep_alive()
