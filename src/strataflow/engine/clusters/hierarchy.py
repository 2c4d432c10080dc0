"""Hierarchical sub-clustering (`vector_config.hierarchical`): groups split into sub-groups.

After the main fit, each group of at least MIN_SPLIT members is split by k-means at the k (2 to
MAX_CHILDREN) with the best silhouette over its members, if that silhouette reaches SPLIT_QUALITY
and the children stand apart (`separation` at least MIN_SEPARATION): a group with no inner
structure is left whole. And so on down to `max_depth` levels. Documents
belong to the leaves, named down the path: `cl_1_sub_0_sub_2`. The tree (every node, with its
parent, level and size) is kept with the run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MIN_SPLIT = 10
MAX_CHILDREN = 5
SPLIT_QUALITY = 0.2
MIN_SEPARATION = 2.0
SILHOUETTE_SAMPLE = 2000


def separation(points: np.ndarray, labels: np.ndarray) -> float:
    """The closest two children's centroid distance over the children's mean RMS radius: a split of
    one Gaussian blob stays below 2 (1.2-1.7 on small samples), distinct sub-topics are well above."""
    groups = [points[labels == c] for c in np.unique(labels)]
    centres = np.asarray([g.mean(axis=0) for g in groups])
    radius = float(np.mean([np.sqrt(((g - c) ** 2).sum(axis=1).mean()) for g, c in zip(groups, centres, strict=True)]))
    gaps = [float(np.linalg.norm(a - b)) for i, a in enumerate(centres) for b in centres[i + 1 :]]
    return min(gaps) / radius if radius > 0 else float("inf")


def _best_split(points: np.ndarray, seed: int) -> np.ndarray | None:
    from sklearn.cluster import KMeans  # here, not at the top: see algorithms.py
    from sklearn.metrics import silhouette_score

    best: tuple[float, np.ndarray] | None = None
    for k in range(2, min(MAX_CHILDREN, len(points) - 1) + 1):
        labels = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(points)
        if len(np.unique(labels)) < 2:
            continue
        score = float(
            silhouette_score(points, labels, sample_size=min(len(points), SILHOUETTE_SAMPLE), random_state=seed)
        )
        if best is None or score > best[0]:
            best = (score, labels)
    if best is None or best[0] < SPLIT_QUALITY or separation(points, best[1]) < MIN_SEPARATION:
        return None
    return best[1]


def subdivide(
    matrix: np.ndarray, labels: np.ndarray, max_depth: int, seed: int
) -> tuple[np.ndarray, list[str], list[dict[str, Any]]]:
    """Leaf labels (0..n-1, noise stays -1), their names, and the whole tree."""
    leaves = np.full(len(labels), -1, dtype=np.int64)
    names: list[str] = []
    tree: list[dict[str, Any]] = []

    def visit(rows: np.ndarray, name: str, parent: str | None, level: int) -> None:
        node: dict[str, Any] = {
            "cluster_id": name,
            "parent_cluster_id": parent,
            "level": level,
            "num_members": len(rows),
        }
        tree.append(node)
        split = _best_split(matrix[rows], seed) if level < max_depth and len(rows) >= MIN_SPLIT else None
        if split is None:
            node["leaf"] = True
            leaves[rows] = len(names)
            names.append(name)
            return
        node["leaf"] = False
        node["child_cluster_ids"] = [f"{name}_sub_{c}" for c in range(int(split.max()) + 1)]
        for child in range(int(split.max()) + 1):
            visit(rows[split == child], f"{name}_sub_{child}", name, level + 1)

    for group in range(int(labels.max(initial=-1)) + 1):
        visit(np.flatnonzero(labels == group), f"cl_{group}", None, 1)
    return leaves, names, tree
