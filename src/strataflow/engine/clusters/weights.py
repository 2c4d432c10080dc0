"""Learning feature weights (multi_feature_strategy 'weighted' without feature_weights).

The candidates are weight vectors over the features (each weight in (0, 1], the largest 1): an
even grid for `grid_search` (`max_iterations` values per feature, at most 3 features), and for
`bayesian` a seeded random search of `max_iterations` candidates around the equal weights: this
server ships no Bayesian optimiser, and the run reports the method it used. Each candidate is
scored by clustering a sample (the cluster's own algorithm and parameters) with the requested
metric; the best weights then weight the blocks of every point.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from strataflow.engine.clusters.algorithms import fit_labels

DEFAULT_SAMPLE = 5000


def weighted(matrix: np.ndarray, widths: list[int], weights: np.ndarray) -> np.ndarray:
    """The blocks of `matrix` (one per feature, `widths` columns each) scaled by `weights`."""
    out = matrix.copy()
    start = 0
    for width, weight in zip(widths, weights, strict=True):
        out[:, start : start + width] *= np.float32(weight)
        start += width
    return out


def _score(metric: str, points: np.ndarray, labels: np.ndarray) -> float | None:
    # scikit-learn here, not at the top: see algorithms.py
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

    kept = labels >= 0
    if len(np.unique(labels[kept])) < 2 or kept.sum() <= len(np.unique(labels[kept])):
        return None
    if metric == "davies_bouldin":
        return -float(davies_bouldin_score(points[kept], labels[kept]))  # lower is better
    if metric == "calinski_harabasz":
        return float(calinski_harabasz_score(points[kept], labels[kept]))
    return float(silhouette_score(points[kept], labels[kept], sample_size=min(int(kept.sum()), 2000), random_state=0))


def candidates(count: int, config: dict[str, Any]) -> tuple[list[np.ndarray], str]:
    method = str(config.get("method") or "bayesian")
    steps = int(config.get("max_iterations") or (5 if method == "grid_search" else 20))
    if method == "grid_search":
        values = np.linspace(1.0 / steps, 1.0, steps)
        grid = [np.asarray(c) for c in itertools.product(values, repeat=count) if max(c) == 1.0]
        return grid, "grid_search"
    rng = np.random.default_rng(int(config.get("random_state", 42) or 0))
    found = [np.ones(count)]
    while len(found) < steps:
        draw = rng.uniform(0.1, 1.0, count)
        found.append(draw / draw.max())
    return found, "random_search"


def learn(
    sample: np.ndarray,
    widths: list[int],
    uris: list[str],
    algorithm: str,
    params: dict[str, Any],
    config: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """The best weights on the sample, with what was tried."""
    metric = str(config.get("metric") or "silhouette")
    size = int(config.get("sample_size") or DEFAULT_SAMPLE)
    if len(sample) > size:
        sample = sample[np.sort(np.random.default_rng(seed).choice(len(sample), size, replace=False))]
    tried: list[dict[str, Any]] = []
    best: tuple[float, np.ndarray] | None = None
    options, method = candidates(len(widths), config)
    for weights in options:
        points = weighted(sample, widths, weights)
        score = _score(metric, points, fit_labels(algorithm, points, params, seed))
        tried.append({"weights": [round(float(w), 4) for w in weights], "score": score})
        if score is not None and (best is None or score > best[0]):
            best = (score, weights)
    chosen = best[1] if best is not None else np.ones(len(widths))
    return {
        "learned_weights": {uri: float(w) for uri, w in zip(uris, chosen, strict=True)},
        "weight_learning": {
            "method_requested": str(config.get("method") or "bayesian"),
            "method_used": method,
            "metric": metric,
            "sample_size": len(sample),
            "candidates": len(tried),
            "best_score": best[0] if best is not None else None,
        },
    }
