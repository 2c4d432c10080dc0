"""Writing a run into its cluster's output collection (services/clusters/output_collection.py).

`write` adds the run's documents (ids derived from the run, so a re-run job rewrites the same
rows); once the run is the cluster's current one, `keep_only` removes every other run's documents.
A run that fails or is canceled before that removes its own (`drop`), so the collection holds the
previous run's documents again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from strataflow.blobs import BlobStore
from strataflow.index.records import StoredDocument, timestamp
from strataflow.index.store import DocumentIndex
from strataflow.services.clusters.artifact import NOISE, read_batches
from strataflow.services.documents.crud import where_of
from strataflow.store.tables import Collection

BATCH = 10_000


def _id(run_id: str, *parts: str) -> str:
    return "doc_" + hashlib.sha256("/".join((run_id, *parts)).encode()).hexdigest()[:24]


def _document(
    collection: Collection, document_id: str, payload: dict[str, Any], vectors: dict[str, Any]
) -> StoredDocument:
    now = timestamp()
    internal = {
        "namespace_id": collection.namespace_id,
        "lineage": {"source_type": "cluster"},
        "metadata": {"ingestion_status": "COMPLETED", "created_by": "cluster_run"},
    }
    return StoredDocument(document_id, collection.collection_id, payload, internal, vectors, now, now)


def _centroid_vectors(collection: Collection, feature_uris: list[str], centroid: list[float]) -> dict[str, Any]:
    """The centroid split into the collection's vector per feature (one block per feature URI)."""
    vectors: dict[str, Any] = {}
    offset = 0
    by_uri = {d.get("feature_uri"): d["index"] for d in collection.vector_indexes}
    for uri in feature_uris:
        index = by_uri.get(uri)
        if index is None:
            continue
        dims = int(index["dimensions"])
        vectors[index["name"]] = centroid[offset : offset + dims]
        offset += dims
    return vectors if offset == len(centroid) else {}


def write(
    index: DocumentIndex,
    blobs: BlobStore,
    collection: Collection,
    run_id: str,
    artifact_key: str,
    groups: list[dict[str, Any]],
    labels: dict[str, str],
    feature_uris: list[str],
    keep_alive: Callable[[], None],
    only: set[str] | None = None,
) -> int:
    """One centroid document per group and one member document per clustered document (`only`:
    just those of these groups, as after a label edit: the ids are the same, so they are replaced).

    A whole run's documents are appended, after removing any this run wrote before (a job taken
    over after a lost lease writes them again): the ids are new, so no merge is needed, and a merge
    costs a look-up that grows with the table."""
    cid = collection.collection_id
    if only is None:
        drop(index, collection, run_id)
    put = index.upsert if only is not None else index.append
    centroids = [
        _document(
            collection,
            _id(run_id, "centroid", g["cluster_id"]),
            {
                "is_centroid": True,
                "cluster_id": g["cluster_id"],
                "cluster_label": labels.get(g["cluster_id"], g["cluster_id"]),
                "keywords": list(g.get("keywords") or []),
                "member_count": int(g.get("num_members", 0)),
                "run_id": run_id,
            },
            _centroid_vectors(collection, feature_uris, list(g.get("centroid") or [])),
        )
        for g in groups
        if only is None or g["cluster_id"] in only
    ]
    written = put(cid, centroids)
    pending: list[StoredDocument] = []
    columns = ["document_id", "collection_id", "cluster_id", "distance_to_centroid"]
    for batch in read_batches(blobs, artifact_key, columns):
        rows = batch.to_pydict()
        for doc, col, group, dist in zip(*(rows[c] for c in columns), strict=True):
            if only is not None and group not in only:
                continue
            payload = {
                "is_centroid": False,
                "cluster_id": group,
                "cluster_label": labels.get(group, "Noise" if group == NOISE else group),
                "source_document_id": doc,
                "source_collection_id": col,
                "distance_to_centroid": dist,
                "run_id": run_id,
            }
            pending.append(_document(collection, _id(run_id, "member", col, doc), payload, {}))
            if len(pending) >= BATCH:
                written += put(cid, pending)
                pending = []
                keep_alive()
    if pending:
        written += put(cid, pending)
    return written


def _where(collection: Collection, run_id: str, operator: str) -> str:
    where = where_of(collection, {"AND": [{"field": "run_id", "operator": operator, "value": run_id}]})
    assert where is not None
    return where


def keep_only(index: DocumentIndex, collection: Collection, run_id: str) -> int:
    """Remove every document another run wrote."""
    return index.delete(collection.collection_id, _where(collection, run_id, "ne"))


def drop(index: DocumentIndex, collection: Collection, run_id: str) -> int:
    """Remove what this run wrote."""
    return index.delete(collection.collection_id, _where(collection, run_id, "eq"))
