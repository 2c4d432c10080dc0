"""What a cluster may ask for: algorithms, their parameters, and the sizes each can run at.

Pure rules, no I/O: the API checks a definition with them before anything is stored, and the
engine re-checks the size it found before it fits anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strataflow.errors import BadRequestError


@dataclass(frozen=True)
class AlgorithmRule:
    """How many points an algorithm may cluster here, and the parameters it accepts.

    `max_points` bounds the O(N^2) algorithms (memory and time grow with the square of the
    points); `default_points` is the sample taken when the caller names no sample size.
    """

    name: str
    max_points: int
    default_points: int
    parameters: frozenset[str]
    takes_k: str | None = None  # the parameter that names the number of clusters, if any


_KMEANS = frozenset(
    {
        "n_clusters",
        "max_iter",
        "random_state",
        "n_init",
        "tol",
        "init",
        "verbose",
        "copy_x",
        "algorithm",
        "batch_size",
        "mini_batch",
    }
)
RULES: dict[str, AlgorithmRule] = {
    "kmeans": AlgorithmRule("kmeans", 1_000_000, 100_000, _KMEANS, "n_clusters"),
    "gaussian_mixture": AlgorithmRule(
        "gaussian_mixture",
        200_000,
        100_000,
        frozenset(
            {
                "n_components",
                "covariance_type",
                "tol",
                "reg_covar",
                "max_iter",
                "n_init",
                "init_params",
                "random_state",
                "warm_start",
                "verbose",
                "verbose_interval",
            }
        ),
        "n_components",
    ),
    "hdbscan": AlgorithmRule(
        "hdbscan",
        50_000,
        50_000,
        frozenset(
            {
                "min_cluster_size",
                "min_samples",
                "cluster_selection_epsilon",
                "max_cluster_size",
                "metric",
                "alpha",
                "cluster_selection_method",
                "allow_single_cluster",
                "prediction_data",
                "match_reference_implementation",
            }
        ),
    ),
    "dbscan": AlgorithmRule(
        "dbscan",
        50_000,
        50_000,
        frozenset({"eps", "min_samples", "metric", "metric_params", "algorithm", "leaf_size", "p", "n_jobs"}),
    ),
    "optics": AlgorithmRule(
        "optics",
        20_000,
        20_000,
        frozenset(
            {"min_samples", "max_eps", "metric", "p", "cluster_method", "eps", "xi", "min_cluster_size", "n_jobs"}
        ),
    ),
    "agglomerative": AlgorithmRule(
        "agglomerative",
        20_000,
        20_000,
        frozenset(
            {
                "n_clusters",
                "affinity",
                "metric",
                "memory",
                "connectivity",
                "compute_full_tree",
                "linkage",
                "distance_threshold",
                "compute_distances",
            }
        ),
        "n_clusters",
    ),
    "spectral": AlgorithmRule(
        "spectral",
        10_000,
        10_000,
        frozenset(
            {
                "n_clusters",
                "eigen_solver",
                "n_components",
                "random_state",
                "n_init",
                "gamma",
                "affinity",
                "n_neighbors",
                "eigen_tol",
                "assign_labels",
                "degree",
                "coef0",
                "kernel_params",
                "n_jobs",
                "verbose",
            }
        ),
        "n_clusters",
    ),
    "mean_shift": AlgorithmRule(
        "mean_shift",
        10_000,
        10_000,
        frozenset(
            {
                "bandwidth",
                "bandwidth_quantile",
                "seeds",
                "bin_seeding",
                "min_bin_freq",
                "cluster_all",
                "n_jobs",
                "max_iter",
            }
        ),
    ),
    "auto": AlgorithmRule("auto", 200_000, 100_000, frozenset({"min_clusters", "max_clusters", "random_state"})),
}
UNAVAILABLE = {
    "leiden": "needs a graph community-detection library this server does not ship",
    "evoc": "needs the evoc library, which this server does not ship",
}
# Where a typed parameter block belongs (the SDK sends kmeans_parameters etc. beside algorithm_params).
TYPED_BLOCKS = {"kmeans_parameters": "kmeans", "dbscan_parameters": "dbscan", "hdbscan_parameters": "hdbscan"}
# k-means above this many points runs as mini-batch k-means: in memory while the points fit in
# IN_MEMORY_BYTES (read once, in Arrow batches, into one float32 matrix), streamed from LanceDB
# chunk by chunk beyond that (bounded memory, several passes over the table).
STREAMED_KMEANS_FROM = 100_000
IN_MEMORY_BYTES = 2 * 1024**3


def streams(algorithm: str, points: int, width: int) -> bool:
    """Whether a run streams its points from LanceDB instead of holding them as one matrix."""
    return algorithm in ("kmeans", "auto") and points > STREAMED_KMEANS_FROM and points * width * 4 > IN_MEMORY_BYTES


def rule_for(algorithm: str) -> AlgorithmRule:
    if algorithm in UNAVAILABLE:
        raise BadRequestError(
            f"Clustering method '{algorithm}' is not available here: {UNAVAILABLE[algorithm]}",
            {"clustering_method": algorithm, "available": sorted(RULES)},
        )
    if algorithm not in RULES:
        raise BadRequestError(
            f"Unknown clustering method '{algorithm}'", {"clustering_method": algorithm, "available": sorted(RULES)}
        )
    return RULES[algorithm]


def check_parameters(algorithm: str, blocks: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    """One parameter dict for `algorithm` from the request's blocks; a block or key of another
    algorithm is a 400 naming it (so a typo never silently falls back to a default)."""
    rule = rule_for(algorithm)
    params: dict[str, Any] = {}
    for block, value in blocks.items():
        if not value:
            continue
        owner = TYPED_BLOCKS.get(block)
        if owner is not None and owner != algorithm:
            raise BadRequestError(
                f"{block} are parameters of '{owner}', but the clustering method is '{algorithm}'",
                {"field": block, "clustering_method": algorithm},
            )
        params.update(value)
    unknown = sorted(set(params) - rule.parameters)
    if unknown:
        raise BadRequestError(
            f"Parameter(s) {', '.join(unknown)} do not belong to clustering method '{algorithm}'",
            {"unknown": unknown, "accepted": sorted(rule.parameters), "clustering_method": algorithm},
        )
    _check_values(algorithm, params)
    _check_with_sklearn(algorithm, params)
    return params


def _check_with_sklearn(algorithm: str, params: dict[str, Any]) -> None:
    """Values scikit-learn would refuse (an unknown linkage, a negative tol) are a 400 now, not a failed run."""
    from sklearn import cluster, mixture

    estimator = {
        "kmeans": cluster.KMeans,
        "gaussian_mixture": mixture.GaussianMixture,
        "hdbscan": cluster.HDBSCAN,
        "dbscan": cluster.DBSCAN,
        "optics": cluster.OPTICS,
        "agglomerative": cluster.AgglomerativeClustering,
        "spectral": cluster.SpectralClustering,
        "mean_shift": cluster.MeanShift,
    }.get(algorithm)
    if estimator is None:
        return
    names = set(estimator().get_params())
    args = {("metric" if k == "affinity" else k): v for k, v in params.items()}
    try:
        estimator(**{k: v for k, v in args.items() if k in names})._validate_params()
    except (ValueError, TypeError) as exc:
        raise BadRequestError(
            f"Invalid parameter for '{algorithm}': {str(exc).splitlines()[0][:300]}", {"clustering_method": algorithm}
        ) from None


def _check_values(algorithm: str, params: dict[str, Any]) -> None:
    def positive_int(name: str, low: int) -> None:
        value = params.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < low):
            raise BadRequestError(f"{name} must be an integer >= {low}", {name: value})

    for name in ("n_clusters", "n_components", "min_cluster_size", "min_clusters", "max_clusters"):
        positive_int(name, 2 if name != "n_components" else 1)
    for name in ("max_iter", "n_init", "min_samples", "batch_size"):
        positive_int(name, 1)
    eps = params.get("eps")
    if eps is not None and (not isinstance(eps, (int, float)) or eps <= 0):
        raise BadRequestError("eps must be a number > 0", {"eps": eps})
    low, high = params.get("min_clusters", 2), params.get("max_clusters", 10)
    if algorithm == "auto" and low > high:
        raise BadRequestError("min_clusters must not exceed max_clusters", {"min_clusters": low, "max_clusters": high})


def requested_k(algorithm: str, params: dict[str, Any]) -> int | None:
    """The number of clusters the caller fixed, if the algorithm takes one."""
    rule = RULES.get(algorithm)
    if rule is None:
        return None
    if rule.takes_k is not None:
        value = params.get(rule.takes_k)
        if value is None and algorithm != "agglomerative":
            return 8 if algorithm in ("kmeans", "spectral") else 1  # scikit-learn's own defaults
        return int(value) if value is not None else (None if params.get("distance_threshold") else 2)
    if algorithm == "auto":
        return int(params.get("min_clusters", 2))
    return None


def points_to_cluster(algorithm: str, available: int, sample_size: int | None) -> int:
    """How many points a run clusters; asking for more than the algorithm can take is a 400."""
    rule = rule_for(algorithm)
    if sample_size is not None and sample_size > rule.max_points:
        raise BadRequestError(
            f"'{algorithm}' cannot cluster {sample_size:,} points here (at most {rule.max_points:,}); "
            "lower sample_size or use kmeans, which scales to 1,000,000 with mini-batches",
            {"clustering_method": algorithm, "sample_size": sample_size, "max_points": rule.max_points},
        )
    return min(available, sample_size if sample_size is not None else rule.default_points)


def check_k_fits(algorithm: str, params: dict[str, Any], points: int) -> None:
    """k larger than the documents is a 400 before any work starts."""
    k = requested_k(algorithm, params)
    if algorithm == "auto":
        k = int(params.get("min_clusters", 2))
    if k is not None and k > points:
        raise BadRequestError(
            f"'{algorithm}' was asked for {k} clusters but only {points} document(s) can be clustered",
            {"clusters": k, "documents": points},
        )
    if points < 2:
        raise BadRequestError(
            f"Clustering needs at least 2 documents with the feature; found {points}", {"documents": points}
        )
