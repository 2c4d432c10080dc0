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
from strataflow.services.clusters.views import group_label
from strataflow.store.tables import Cluster, ClusterRun

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


def spec_of(cluster_id: str, run: ClusterRun, artifact_key: str, groups: list[dict[str, Any]]) -> EnrichmentSpec:
    """What `run` writes (its labels as edited now)."""
    return EnrichmentSpec(
        cluster_id=cluster_id,
        run_id=run.run_id,
        artifact_key=artifact_key,
        labels={g["cluster_id"]: group_label(run, g) for g in groups},
        keywords={g["cluster_id"]: list(g.get("keywords") or []) for g in groups},
        mappings=list(run.settings.get("field_mappings") or []),
    )


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
    index: DocumentIndex,
    collection_id: str,
    items: list[tuple[str, str, float | None]],
    spec: EnrichmentSpec,
    only_if_current: bool = False,
) -> int:
    by_id = {doc: (group, dist) for doc, group, dist in items}
    documents = index.get_many(collection_id, list(by_id), with_vectors=True)  # an upsert rewrites whole rows
    if only_if_current:  # a relabel touches only what this run wrote last
        documents = [d for d in documents if (d.internal.get("clusters") or {}).get(spec.cluster_id) == spec.run_id]
    for document in documents:
        group, dist = by_id[document.document_id]
        document.payload.update(_values(spec, group, dist))
        document.internal.setdefault("clusters", {})[spec.cluster_id] = spec.run_id
    return index.upsert(collection_id, documents)


def relabel(index: DocumentIndex, blobs: BlobStore, spec: EnrichmentSpec, groups: set[str]) -> int:
    """Write `spec`'s (edited) labels onto the members of `groups` that this run enriched last."""
    if not any(m["source_field"] == "cluster_label" for m in spec.mappings):
        return 0
    members: dict[str, list[tuple[str, str, float | None]]] = defaultdict(list)
    for batch in read_batches(
        blobs, spec.artifact_key, ["document_id", "collection_id", "cluster_id", "distance_to_centroid"]
    ):
        rows = batch.to_pydict()
        for doc, col, group, dist in zip(
            rows["document_id"], rows["collection_id"], rows["cluster_id"], rows["distance_to_centroid"], strict=True
        ):
            if group in groups:
                members[col].append((doc, group, dist))
    count = 0
    for col, items in members.items():
        for start in range(0, len(items), BATCH):
            count += _write(index, col, items[start : start + BATCH], spec, only_if_current=True)
    return count


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


def _nothing() -> None:
    return None


def current_spec(cluster: Cluster, run: ClusterRun | None) -> EnrichmentSpec | None:
    """The enrichment the cluster's current run wrote, if it wrote any."""
    if run is None or run.run_id != cluster.current_run_id or not run.enriched or run.artifact_key is None:
        return None
    return spec_of(cluster.cluster_id, run, run.artifact_key, run.groups)


def remove_current(index: DocumentIndex, blobs: BlobStore, cluster: Cluster, run: ClusterRun | None) -> None:
    """Deleting a cluster: its current run's fields leave the documents it enriched."""
    spec = current_spec(cluster, run)
    if spec is not None:
        clear(index, blobs, spec, _nothing)
