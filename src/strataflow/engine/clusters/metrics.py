"""Quality of a clustering: silhouette (over a sample), Davies-Bouldin, Calinski-Harabasz, noise."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SILHOUETTE_SAMPLE = 5_000  # silhouette is O(n^2): measured on at most this many points


def quality(sample: np.ndarray, labels: np.ndarray, sizes: np.ndarray, noise: int, seed: int) -> dict[str, Any]:
    """Metrics of a run. `sample`/`labels` are the points the scores are measured on (all of them, or a
    uniform sample for large runs); `sizes` and `noise` count every clustered point."""
    # scikit-learn here, not at the top: see algorithms.py
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

    total = int(sizes.sum()) + noise
    out: dict[str, Any] = {
        "num_clusters": len(sizes),
        "noise_points": noise,
        "noise_ratio": noise / total if total else 0.0,
        "avg_cluster_size": float(sizes.mean()) if len(sizes) else 0.0,
        "cluster_size_entropy": _entropy(sizes),
        "measured_on_points": 0,
        "silhouette_score": None,
        "davies_bouldin_index": None,
        "calinski_harabasz_score": None,
    }
    kept = labels >= 0
    points, groups = sample[kept], labels[kept]
    out["measured_on_points"] = len(points)
    if len(np.unique(groups)) < 2 or len(points) <= len(np.unique(groups)):
        out["degenerate_detail"] = "fewer than two groups with members: the scores are undefined"
        return out
    size = min(len(points), SILHOUETTE_SAMPLE)
    out["silhouette_score"] = float(silhouette_score(points, groups, sample_size=size, random_state=seed))
    out["silhouette_sample_size"] = size
    out["davies_bouldin_index"] = float(davies_bouldin_score(points, groups))
    out["calinski_harabasz_score"] = float(calinski_harabasz_score(points, groups))
    return out


def _entropy(sizes: np.ndarray) -> float:
    total = float(sizes.sum())
    if total == 0 or len(sizes) < 2:
        return 0.0
    shares = sizes[sizes > 0] / total
    return float(-(shares * np.log(shares)).sum() / math.log(len(sizes)))
