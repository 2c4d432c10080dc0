"""A composite run (services/clusters/composite.py): the algorithm groups the source runs' centroids.

Each point is one source centroid (`<run_id>:<cluster_id>`); a meta-cluster's centroid is the
unweighted mean of the source centroids it holds, and its keywords are the sources' keywords
weighted by their member counts. Results are kept like any run's (groups, metrics, Parquet).
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import numpy as np

from strataflow.blobs import BlobStore
from strataflow.engine.clusters.algorithms import centroids, compact_labels, fit_labels
from strataflow.engine.clusters.assign import Assigner
from strataflow.engine.clusters.metrics import quality
from strataflow.errors import StrataflowError
from strataflow.services.clusters.artifact import ArtifactWriter
from strataflow.services.clusters.views import group_label
from strataflow.store.tables import ClusterRun


def run_composite(
    blobs: BlobStore, sources: list[ClusterRun], settings: dict[str, Any], key: str, seed: int
) -> dict[str, Any]:
    clock = time.monotonic()
    points: list[tuple[ClusterRun, dict[str, Any]]] = [(r, g) for r in sources for g in r.groups if g.get("centroid")]
    if len(points) < 2:
        raise StrataflowError("The source runs have fewer than 2 centroids between them: nothing to group")
    matrix = np.asarray([g["centroid"] for _, g in points], dtype=np.float32)
    algorithm = str(settings["algorithm"])
    params = dict(settings.get("algorithm_params") or {})
    if algorithm == "auto":  # k by silhouette over the centroids, as for documents
        from strataflow.engine.clusters.algorithms import choose_k

        high = min(int(params.pop("max_clusters", 10)), len(matrix) - 1)
        params["n_clusters"], _ = choose_k(matrix, min(int(params.pop("min_clusters", 2)), high), high, seed)
    labels, k = compact_labels(fit_labels("kmeans" if algorithm == "auto" else algorithm, matrix, params, seed))
    centers = centroids(matrix, labels, k, "mean")
    from sklearn.decomposition import PCA

    components = min(int(settings.get("vis_n_components") or 2), matrix.shape[1], len(matrix))
    writer = ArtifactWriter()
    try:
        assigner = Assigner(centers, PCA(n_components=components, random_state=seed).fit(matrix), writer)
        assigner.add(
            [f"{r.run_id}:{g['cluster_id']}" for r, g in points], [r.cluster_id for r, _ in points], matrix, labels
        )
        groups = assigner.groups()
        for group in groups:
            members = [points[i] for i in np.flatnonzero(labels == group["index"])]
            group["composite_sources"] = [
                {
                    "source_run_id": r.run_id,
                    "original_cluster_id": g["cluster_id"],
                    "num_members": int(g.get("num_members", 0)),
                    "label": group_label(r, g),
                }
                for r, g in members
            ]
            weights: dict[str, float] = defaultdict(float)
            for _, g in members:
                for rank, word in enumerate(g.get("keywords") or []):
                    weights[word] += int(g.get("num_members", 1)) / (rank + 1)
            group["keywords"] = sorted(weights, key=lambda w: -weights[w])[:10]
            group["label"] = ", ".join(group["keywords"][:3]) or f"Cluster {group['index']}"
            group["num_members"] = len(members)
        metrics = quality(matrix, labels, assigner.sizes()[assigner.sizes() > 0], assigner.noise, seed)
        writer.store(blobs, key)
    finally:
        writer.close()
    return {
        "num_clusters": len(groups),
        "num_points": len(points),
        "groups": groups,
        "metrics": {**metrics, "source_execution_ids": [r.run_id for r in sources]},
        "artifact_key": key,
        "timings": {"total_compute_s": time.monotonic() - clock, "vectors_read": float(len(points))},
        "streamed": False,
    }
