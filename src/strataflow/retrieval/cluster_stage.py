"""cluster: group the hits of a search by their vectors (scikit-learn, the algorithms /v1/clusters uses).

Vectors are those of `feature_uri` (default: the collection's first vector index), L2-normalised so
distances follow cosine similarity. Output modes, as the SDK describes them:
- labeled: every hit, in its order, with `cluster_id` ("cluster_<n>", None for noise or a hit
  without the vector) and `cluster_score` (distance to its cluster's centre, lower is closer);
- representatives: one hit per cluster, the one closest to the centre, largest cluster first;
- clusters: the same representatives, each carrying `cluster_id`, `member_count`, `members`
  (closest first, at most `max_members_per_cluster`) and `centroid` (when `include_centroids`).
Fields are added to the hits' copies read for this execution; nothing is written.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from strataflow.engine.clusters.algorithms import centroids, compact_labels, fit_labels
from strataflow.errors import BadRequestError
from strataflow.retrieval.context import StageContext, StageParams, parse_params
from strataflow.retrieval.results import Hit
from strataflow.retrieval.shaping_stages import hit_vectors

ALGORITHMS = ("hdbscan", "kmeans", "dbscan", "agglomerative", "spectral", "gaussian_mixture")
SEED = 42  # the same hits cluster the same way every time


class ClusterParams(StageParams):
    """The SDK's StageParamsCluster."""

    algorithm: str = "hdbscan"
    n_clusters: int | None = Field(default=None, ge=2, le=100)
    min_cluster_size: int = Field(default=5, ge=2, le=100)
    feature_uri: str | None = None
    output_mode: str = Field(default="clusters", pattern="^(clusters|labeled|representatives)$")
    include_centroids: bool = True
    max_members_per_cluster: int = Field(default=50, ge=1, le=500)


def _labels(params: ClusterParams, matrix: np.ndarray) -> np.ndarray:
    count = len(matrix)
    if count < 3:  # too few to split: one group
        return np.zeros(count, dtype=np.int64)
    k = min(params.n_clusters or min(8, max(2, count // 10)), count)
    if params.algorithm == "hdbscan":
        settings: dict[str, Any] = {"min_cluster_size": min(params.min_cluster_size, max(2, count // 3))}
    elif params.algorithm == "dbscan":
        settings = {"eps": 0.5, "min_samples": min(params.min_cluster_size, max(2, count // 3))}
    elif params.algorithm == "gaussian_mixture":
        settings = {"n_components": k}
    else:
        settings = {"n_clusters": k}
    return fit_labels(params.algorithm, matrix, settings, SEED)


def cluster(ctx: StageContext, raw: dict[str, Any], hits: list[Hit] | None) -> list[Hit]:
    params: ClusterParams = parse_params(ClusterParams, ctx.stage_name, raw)
    if params.algorithm not in ALGORITHMS:
        raise BadRequestError(
            f"Unknown clustering algorithm '{params.algorithm}'",
            {"algorithm": params.algorithm, "supported": ALGORITHMS},
        )
    if hits is None:
        raise BadRequestError("cluster groups the hits of an earlier stage; put a search stage first", {})
    pool = list(hits)
    vectors = hit_vectors(ctx, pool, params.feature_uri)
    present = [i for i, v in enumerate(vectors) if v is not None]
    if not present:
        ctx.notes.update(clusters=0, without_vector=len(pool))
        return pool if params.output_mode == "labeled" else []
    matrix = np.array([vectors[i] for i in present], dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    matrix = (matrix / np.where(norms == 0, 1.0, norms)).astype(np.float32)
    labels, k = compact_labels(_labels(params, matrix))
    centres = centroids(matrix, labels, k, "mean") if k else np.zeros((0, matrix.shape[1]), dtype=np.float32)
    distance = {
        present[row]: float(np.linalg.norm(matrix[row] - centres[label])) if label >= 0 else None
        for row, label in enumerate(labels)
    }
    group_of = {present[row]: int(label) for row, label in enumerate(labels)}
    members: dict[int, list[int]] = {}
    for position, label in group_of.items():
        if label >= 0:
            members.setdefault(label, []).append(position)
    for group in members.values():
        group.sort(key=lambda p: distance[p] or 0.0)
    ctx.notes.update(
        clusters=k, noise=sum(1 for v in group_of.values() if v < 0), without_vector=len(pool) - len(present)
    )
    if params.output_mode == "labeled":
        for position, hit in enumerate(pool):
            label = group_of.get(position, -1)
            hit.document.payload["cluster_id"] = f"cluster_{label}" if label >= 0 else None
            hit.document.payload["cluster_score"] = distance.get(position)
        return pool
    ordered = sorted(members.items(), key=lambda item: (-len(item[1]), item[0]))
    out: list[Hit] = []
    for label, group in ordered:
        hit = pool[group[0]]
        payload = hit.document.payload
        payload["cluster_id"] = f"cluster_{label}"
        payload["member_count"] = len(group)
        if params.output_mode == "clusters":
            payload["members"] = [
                {
                    "document_id": pool[p].document.document_id,
                    "collection_id": pool[p].document.collection_id,
                    "score": pool[p].score,
                    "cluster_score": distance[p],
                }
                for p in group[: params.max_members_per_cluster]
            ]
            if params.include_centroids:
                payload["centroid"] = [round(float(x), 6) for x in centres[label]]
        out.append(hit)
    return out
