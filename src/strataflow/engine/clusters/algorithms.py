"""The clustering algorithms: scikit-learn's, with the contract's parameter names.

In memory (`fit_labels`): the matrix of selected points, one label per point (-1 is noise).
Streamed (`streamed_kmeans`): mini-batch k-means fed chunk by chunk from LanceDB over a few
epochs, so a million points never sit in memory at once. `choose_k` is what `auto` measures:
the silhouette of k-means at each k in a small range, over a sample.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from strataflow.engine.clusters.vectors import ChunkSource

# scikit-learn (with SciPy) is imported where a clustering runs, not here: every `strataflow`
# process imports this module at start (the runtime registers the cluster job), and those two
# were about a fifth of the server's import time.
if TYPE_CHECKING:
    from sklearn import cluster as skc

_IGNORED = {
    "prediction_data",
    "match_reference_implementation",
    "verbose",
    "copy_x",
    "mini_batch",
    "min_clusters",
    "max_clusters",
    "memory",
    "connectivity",
}


EPOCH_TOL = 1e-2  # relative centre movement over a whole pass below which streamed k-means stops


def _kwargs(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k not in _IGNORED and v is not None}


def kmeans_model(params: dict[str, Any], seed: int) -> skc.KMeans | skc.MiniBatchKMeans:
    from sklearn import cluster as skc

    args = _kwargs(params)
    args.setdefault("random_state", seed)
    if params.get("mini_batch"):
        args.setdefault("batch_size", 4096)
        args.pop("algorithm", None)
        return skc.MiniBatchKMeans(**args)
    args.pop("batch_size", None)
    return skc.KMeans(**args)


def fit_labels(algorithm: str, matrix: np.ndarray, params: dict[str, Any], seed: int) -> np.ndarray:
    """Labels of every row; -1 marks noise (density-based algorithms)."""
    from sklearn import cluster as skc
    from sklearn.mixture import GaussianMixture

    args = _kwargs(params)
    if algorithm == "kmeans":
        model: Any = kmeans_model(params, seed)
    elif algorithm == "hdbscan":
        model = skc.HDBSCAN(**{"copy": True, **args})
    elif algorithm == "dbscan":
        model = skc.DBSCAN(**args)
    elif algorithm == "optics":
        model = skc.OPTICS(**args)
    elif algorithm == "agglomerative":
        if "affinity" in args:  # the contract's old name for scikit-learn's `metric`
            args["metric"] = args.pop("affinity")
        if "distance_threshold" in args:
            args["n_clusters"] = None
        model = skc.AgglomerativeClustering(**args)
    elif algorithm == "spectral":
        args.setdefault("random_state", seed)
        model = skc.SpectralClustering(**args)
    elif algorithm == "mean_shift":
        quantile = args.pop("bandwidth_quantile", 0.1)  # 0.3 (scikit-learn's) merges groups of a quarter of the points
        if args.get("bandwidth") is None:
            args["bandwidth"] = skc.estimate_bandwidth(
                matrix, quantile=quantile, n_samples=min(len(matrix), 2000), random_state=seed
            )
        model = skc.MeanShift(**args)
    elif algorithm == "gaussian_mixture":
        args.setdefault("random_state", seed)
        gmm = GaussianMixture(**args)
        return np.asarray(gmm.fit_predict(matrix), dtype=np.int64)
    else:
        raise ValueError(f"no in-memory fit for {algorithm}")
    return np.asarray(model.fit_predict(matrix), dtype=np.int64)


def compact_labels(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels renumbered 0..k-1 (noise stays -1), and k."""
    kept = np.unique(labels[labels >= 0])
    mapping = np.full(int(labels.max(initial=-1)) + 2, -1, dtype=np.int64)
    mapping[kept] = np.arange(len(kept))
    return np.where(labels >= 0, mapping[labels], -1), len(kept)


def large_kmeans(matrix: np.ndarray, params: dict[str, Any], seed: int) -> np.ndarray:
    """k-means over a large in-memory matrix: scikit-learn's MiniBatchKMeans as scikit-learn runs it
    (k-means++ on its own init sample, its early stop on the smoothed inertia), without the labelling
    pass inside its fit: the labels come from one chunked `predict` pass. `mini_batch: false` asks for
    full Lloyd k-means instead. The matrix is used as it is (float32, C-contiguous): no copy."""
    from sklearn import cluster as skc

    if params.get("mini_batch") is False:
        return np.asarray(kmeans_model({**params, "mini_batch": False}, seed).fit(matrix).labels_, dtype=np.int64)
    args = {key: v for key, v in _kwargs(params).items() if key in ("init", "max_iter", "tol", "n_init")}
    model = skc.MiniBatchKMeans(
        n_clusters=int(params.get("n_clusters", 8)),
        random_state=seed,
        batch_size=int(params.get("batch_size", 4096)),
        compute_labels=False,
        **{"n_init": 1, **args},
    ).fit(matrix)
    labels = np.empty(len(matrix), dtype=np.int64)
    for start in range(0, len(matrix), 65_536):
        labels[start : start + 65_536] = model.predict(matrix[start : start + 65_536])
    return labels


def centroids(matrix: np.ndarray, labels: np.ndarray, k: int, method: str) -> np.ndarray:
    """The centre of each group: its mean, median, or the member closest to its mean (medoid).

    One group's rows are gathered at a time (a masked copy is far cheaper than a group-indicator
    product, which BLAS runs slowly at this shape)."""
    centers = np.zeros((k, matrix.shape[1]), dtype=np.float32)
    for group in range(k):
        members = matrix[labels == group]
        if method == "median":
            centers[group] = np.median(members, axis=0)
        else:
            mean = members.mean(axis=0)
            centers[group] = members[np.argmin(((members - mean) ** 2).sum(axis=1))] if method == "medoid" else mean
    return centers


def choose_k(sample: np.ndarray, low: int, high: int, seed: int) -> tuple[int, dict[str, float]]:
    """The k with the best silhouette over a sample, in [low, high] (bounded by the sample)."""
    from sklearn import cluster as skc
    from sklearn.metrics import silhouette_score

    high = min(high, len(sample) - 1)
    scores: dict[str, float] = {}
    for k in range(low, max(low, high) + 1):
        labels = skc.KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(sample)
        if len(np.unique(labels)) < 2:
            continue
        scores[str(k)] = float(silhouette_score(sample, labels, sample_size=min(len(sample), 5000), random_state=seed))
    if not scores:
        return low, scores
    return int(max(scores, key=lambda key: scores[key])), scores


def streamed_kmeans(
    source: ChunkSource,
    params: dict[str, Any],
    init_sample: np.ndarray,
    seed: int,
    epochs: int,
    keep_alive: Callable[[], None],
) -> tuple[skc.MiniBatchKMeans, list[float]]:
    """Mini-batch k-means over the source's chunks: k-means++ seeded from a sample, then at most
    `epochs` passes of partial_fit, stopping early once a whole pass moves the centres by less than
    EPOCH_TOL (1 %) of their size: the seeds come from a full k-means on the sample, so on data
    with structure the first pass often moves them less than that. A pass is the unit checked:
    chunks arrive in storage order, often grouped, so a shorter window could look converged
    while some centres were not yet visited.
    Memory: one chunk plus the centres. Returns the model and each pass's relative movement."""
    from sklearn import cluster as skc

    k = int(params.get("n_clusters", 8))
    seeds = skc.KMeans(n_clusters=k, n_init=1, random_state=seed, max_iter=50).fit(init_sample).cluster_centers_
    model = skc.MiniBatchKMeans(
        n_clusters=k, init=seeds, n_init=1, random_state=seed, batch_size=int(params.get("batch_size", 4096))
    )
    before = np.asarray(seeds, dtype=np.float64)
    shifts: list[float] = []
    for _ in range(max(1, epochs)):
        for chunk in source.chunks(int(params.get("batch_size", 8192))):
            model.partial_fit(chunk.vectors)
            keep_alive()
        after = np.asarray(model.cluster_centers_, dtype=np.float64)
        shifts.append(float(np.linalg.norm(after - before)) / max(float(np.linalg.norm(before)), 1e-12))
        if shifts[-1] < EPOCH_TOL:
            break
        before = after
    return model, shifts
