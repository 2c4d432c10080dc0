"""Cluster rules and algorithms without a server: parameters, sizes, labels, keywords, metrics, streaming."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from strataflow.engine.clusters.algorithms import choose_k, compact_labels, fit_labels, streamed_kmeans
from strataflow.engine.clusters.keywords import class_tfidf_keywords, text_of
from strataflow.engine.clusters.metrics import quality
from strataflow.engine.clusters.vectors import VectorSource, sample_rows
from strataflow.errors import BadRequestError
from strataflow.index.records import StoredDocument
from strataflow.index.store import DocumentIndex
from strataflow.services.clusters.rules import check_k_fits, check_parameters, points_to_cluster
from strataflow.store.tables import Collection


def test_parameters_of_another_algorithm_are_refused() -> None:
    assert check_parameters("kmeans", {"kmeans_parameters": {"n_clusters": 4}}) == {"n_clusters": 4}
    with pytest.raises(BadRequestError, match="parameters of 'kmeans'"):
        check_parameters("dbscan", {"kmeans_parameters": {"n_clusters": 4}})
    with pytest.raises(BadRequestError, match="min_cluster_size"):
        check_parameters("kmeans", {"algorithm_params": {"min_cluster_size": 4}})
    with pytest.raises(BadRequestError, match="linkage"):
        check_parameters("agglomerative", {"algorithm_params": {"linkage": "nearest"}})
    with pytest.raises(BadRequestError, match="not available"):
        check_parameters("leiden", {})


def test_sizes_and_k() -> None:
    assert points_to_cluster("hdbscan", 80_000, None) == 50_000  # the default sample
    assert points_to_cluster("kmeans", 500, 1_000_000) == 500
    with pytest.raises(BadRequestError, match="at most 10,000"):
        points_to_cluster("spectral", 80_000, 20_000)
    with pytest.raises(BadRequestError, match="asked for 9 clusters"):
        check_k_fits("kmeans", {"n_clusters": 9}, 5)
    check_k_fits("hdbscan", {}, 5)


def test_labels_are_compacted_and_noise_kept() -> None:
    labels, k = compact_labels(np.array([5, -1, 5, 2, 9]))
    assert k == 3 and labels.tolist() == [1, -1, 1, 0, 2]


def test_algorithms_recover_blobs_and_auto_picks_k() -> None:
    points, truth = make_blobs(n_samples=300, centers=4, n_features=8, cluster_std=0.5, random_state=1)
    points = points.astype(np.float32)
    for algorithm, params in (
        ("kmeans", {"n_clusters": 4}),
        ("agglomerative", {"n_clusters": 4}),
        ("gaussian_mixture", {"n_components": 4}),
        ("hdbscan", {"min_cluster_size": 10}),
        ("spectral", {"n_clusters": 4}),
        ("mean_shift", {}),
    ):
        labels = fit_labels(algorithm, points, params, seed=0)
        kept = labels >= 0
        assert adjusted_rand_score(truth[kept], labels[kept]) > 0.95, algorithm
    k, scores = choose_k(points, 2, 8, seed=0)
    assert k == 4 and set(scores) == {str(i) for i in range(2, 9)}
    metrics = quality(points, truth, np.bincount(truth), 0, seed=0)
    assert metrics["silhouette_score"] > 0.5 and metrics["davies_bouldin_index"] < 1
    assert quality(points, np.zeros(300, dtype=int), np.array([300]), 0, 0)["silhouette_score"] is None


def test_class_tfidf_names_groups_by_their_own_words() -> None:
    texts = {
        "a": ["the rocket reached orbit", "orbit of the moon rocket"],
        "b": ["bake the bread with flour", "flour and yeast make bread"],
        "c": [],
    }
    keywords = class_tfidf_keywords(texts)
    assert set(keywords["a"][:2]) == {"rocket", "orbit"} and set(keywords["b"][:2]) == {"bread", "flour"}
    assert keywords["c"] == []
    assert text_of({"title": "x", "nested": {"body": "y", "cluster_label": "skip"}, "n": 3}) == "x y"


def test_vectors_stream_in_chunks_with_a_stable_sample(tmp_path: Path) -> None:
    index = DocumentIndex(str(tmp_path / "lance"))
    index.create_table("col_a", {"v": 8})
    points, truth = make_blobs(n_samples=3000, centers=5, n_features=8, cluster_std=0.3, random_state=2)
    index.upsert(
        "col_a",
        [
            StoredDocument(document_id=f"d{i:05d}", collection_id="col_a", vectors={"v": p.tolist()})
            for i, p in enumerate(points)
        ],
    )
    source = VectorSource(
        index=index,
        collections=[Collection(collection_id="col_a")],
        columns={"col_a": {"u": "v"}},
        feature_uris=["u"],
        dimensions={"u": 8},
        wheres={"col_a": "v IS NOT NULL"},
    )
    assert source.count() == 3000
    source.select(1000, seed=3)
    first = [i for chunk in source.chunks(256) for i in chunk.ids]
    assert len(first) == 1000 and first == [i for chunk in source.chunks(700) for i in chunk.ids]
    matrix, ids, _ = source.load()
    assert matrix.shape == (1000, 8) and ids == first
    sample = sample_rows(source, 200, seed=1)
    model, shifts = streamed_kmeans(
        source, {"n_clusters": 5, "batch_size": 256}, sample, seed=0, epochs=5, keep_alive=lambda: None
    )
    assert 1 <= len(shifts) < 5 and shifts[-1] < 0.01  # well-separated blobs: converged before the last pass
    by_id = {f"d{i:05d}": t for i, t in enumerate(truth)}
    assert adjusted_rand_score([by_id[i] for i in ids], model.predict(matrix)) > 0.95


def test_weight_learning_prefers_the_informative_feature() -> None:
    from strataflow.engine.clusters.weights import learn

    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(3), 60)
    informative = np.eye(3)[truth] * 5 + rng.normal(0, 0.3, (180, 3))
    noise = rng.normal(0, 3.0, (180, 4))
    sample = np.hstack([informative, noise]).astype(np.float32)
    for method in ("grid_search", "bayesian"):
        found = learn(
            sample,
            [3, 4],
            ["a", "b"],
            "kmeans",
            {"n_clusters": 3},
            {"method": method, "max_iterations": 5 if method == "grid_search" else 20},
            0,
        )
        weights = found["learned_weights"]
        assert weights["a"] == 1.0 and weights["b"] < 0.5, found
        assert found["weight_learning"]["method_used"] == (
            "grid_search" if method == "grid_search" else "random_search"
        )


def test_whitening_round_trips_and_hierarchy_splits_only_structure() -> None:
    from strataflow.engine.clusters.hierarchy import subdivide
    from strataflow.engine.clusters.preprocess import Linear

    rng = np.random.default_rng(1)
    points = rng.normal(0, 1, (300, 5)).astype(np.float32) @ rng.normal(0, 1, (5, 5)).astype(np.float32)
    linear = Linear([{"method": "whitening", "regularization": 1e-5}], points)
    white = linear(points)
    assert np.allclose(np.cov(white, rowvar=False), np.eye(5), atol=0.05)
    assert np.allclose(linear.inverse(white), points, atol=1e-3)

    blobs = np.vstack([rng.normal(c, 0.2, (30, 4)) for c in (0, 5, 10)]).astype(np.float32)
    labels = np.array([0] * 60 + [1] * 30)  # group 0 holds two blobs, group 1 one
    leaves, names, tree = subdivide(blobs, labels, 3, 0)
    assert sorted(names) == ["cl_0_sub_0", "cl_0_sub_1", "cl_1"]
    assert [n["cluster_id"] for n in tree if not n["leaf"]] == ["cl_0"]
    assert len(set(leaves[:30])) == 1 and len(set(leaves[30:60])) == 1 and leaves[0] != leaves[30]
