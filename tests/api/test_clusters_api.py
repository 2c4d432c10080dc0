"""Clusters over the API on SQLite and PostgreSQL: CRUD, runs on the engine, groups, enrichment,
the scatter, the export, and bad input.

The collection is a real text collection; its documents are written straight into LanceDB with
vectors around three known centres (and words per topic), so the right answer is known.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from strataflow.runtime import Runtime
from strataflow.store.tables import ClusterRun
from tests.cluster_points import TOPICS, write_points
from tests.collection_flows import make_bucket, text_collection
from tests.helpers import assert_error, wait_task


@pytest.fixture
def corpus(client: TestClient, namespace: dict[str, Any], runtime: Runtime) -> dict[str, Any]:
    make_bucket(client)
    collection = text_collection(
        client, "points", {"type": "bucket", "bucket_ids": ["docs"]}, split_by="none", model="minilm"
    )
    cid = collection["collection_id"]
    column, truth = write_points(runtime, cid)
    features = client.get(f"/v1/collections/{cid}/features").json()["features"]
    return {"collection_id": cid, "feature_uri": features[0]["feature_uri"], "column": column, "truth": truth}


def vector_cluster(
    corpus: dict[str, Any], name: str = "topics", method: str = "kmeans", **config: Any
) -> dict[str, Any]:
    return {
        "cluster_name": name,
        "collection_ids": ["points"],
        "cluster_type": "vector",
        "vector_config": {"feature_uris": [corpus["feature_uri"]], "clustering_method": method, **config},
    }


def run_cluster(client: TestClient, cluster_id: str, **body: Any) -> dict[str, Any]:
    started = client.post(f"/v1/clusters/{cluster_id}/execute", json=body)
    assert started.status_code == 200, started.text
    task = wait_task(client, started.json()["task_id"], timeout=60)
    assert task["status"] == "COMPLETED", task
    run = client.get(f"/v1/clusters/{cluster_id}/executions/{started.json()['run_id']}").json()
    assert run["status"] == "completed", run
    return dict(run)


def assignments(client: TestClient, cluster_id: str, run_id: str) -> dict[str, str]:
    body = client.get(f"/v1/clusters/{cluster_id}/executions/{run_id}/export?format=csv")
    assert body.status_code == 200, body.text
    rows = list(csv.DictReader(io.StringIO(body.text)))
    return {r["document_id"]: r["cluster_id"] for r in rows}


def test_crud_and_bad_input(client: TestClient, corpus: dict[str, Any]) -> None:
    created = client.post(
        "/v1/clusters",
        json=vector_cluster(
            corpus,
            kmeans_parameters={"n_clusters": 3},
        )
        | {"description": "three topics", "metadata": {"team": "a"}},
    )
    assert created.status_code == 200, created.text
    body = created.json()
    cid = body["cluster_id"]
    assert cid.startswith("clust_") and body["status"] == "DRAFT" and body["algorithm"] == "kmeans"
    assert body["input_collections"] == [corpus["collection_id"]] and body["feature_uris"] == [corpus["feature_uri"]]
    assert client.get("/v1/clusters/topics").json()["cluster_id"] == cid
    assert client.get("/v1/clusters").json()["total_count"] == 1
    listed = client.post("/v1/clusters/list", json={"search": "TOPICS"}).json()
    assert [c["cluster_id"] for c in listed["results"]] == [cid]
    patched = client.patch(f"/v1/clusters/{cid}", json={"description": "x", "algorithm_params": {"n_init": 2}}).json()
    assert patched["description"] == "x" and patched["algorithm_params"] == {"n_clusters": 3, "n_init": 2}

    assert_error(client.post("/v1/clusters", json=vector_cluster(corpus)), 409)
    assert_error(client.post("/v1/clusters", json={**vector_cluster(corpus, "b"), "collection_ids": ["nope"]}), 404)
    bad_uri = vector_cluster(corpus, "c")
    bad_uri["vector_config"]["feature_uris"] = ["mixpeek://image_extractor@v1/embedding"]
    assert "no feature" in assert_error(client.post("/v1/clusters", json=bad_uri), 400)["error"]["message"]
    wrong_block = vector_cluster(corpus, "d", "hdbscan", kmeans_parameters={"n_clusters": 3})
    assert (
        "parameters of 'kmeans'" in assert_error(client.post("/v1/clusters", json=wrong_block), 400)["error"]["message"]
    )
    wrong_key = vector_cluster(corpus, "e", algorithm_params={"eps": 0.5})
    assert "eps" in assert_error(client.post("/v1/clusters", json=wrong_key), 400)["error"]["message"]
    assert_error(client.post("/v1/clusters", json=vector_cluster(corpus, "f", algorithm_params={"init": "bogus"})), 400)
    assert_error(client.post("/v1/clusters", json=vector_cluster(corpus, "g", "spectral", sample_size=500_000)), 400)
    assert_error(client.post("/v1/clusters", json=vector_cluster(corpus, "h", "leiden")), 400)
    assert_error(client.patch(f"/v1/clusters/{cid}", json={"algorithm_params": {"eps": 1}}), 400)
    assert client.get(f"/v1/clusters/{cid}").json()["algorithm_params"] == {"n_clusters": 3, "n_init": 2}
    assert client.get("/v1/clusters").json()["total_count"] == 1  # nothing half-written

    # k larger than the documents: refused before any task exists.
    big = client.post("/v1/clusters", json=vector_cluster(corpus, "big", kmeans_parameters={"n_clusters": 500}))
    assert_error(client.post(f"/v1/clusters/{big.json()['cluster_id']}/execute"), 400)
    assert client.post("/v1/tasks/list", json={"task_type": "engine_cluster_build"}).json()["results"] == []

    assert client.delete(f"/v1/clusters/{cid}").json()["success"] is True
    assert_error(client.get(f"/v1/clusters/{cid}"), 404)


def test_kmeans_run_groups_labels_visualization_export(
    client: TestClient, corpus: dict[str, Any], runtime: Runtime
) -> None:
    cid = client.post(
        "/v1/clusters", json=vector_cluster(corpus, kmeans_parameters={"n_clusters": 3}, vis_n_components=3)
    ).json()["cluster_id"]
    run = run_cluster(client, cid)
    assert run["run_id"].startswith("run_") and run["num_clusters"] == 3 and run["num_points"] == 60
    metrics = run["metrics"]
    assert metrics["silhouette_score"] > 0.5 and metrics["davies_bouldin_index"] >= 0
    assert metrics["calinski_harabasz_score"] > 0 and metrics["noise_ratio"] == 0
    task = client.get(f"/v1/tasks/{run['task_id']}").json()
    assert task["task_type"] == "engine_cluster_build"
    assert task["outputs"][0]["num_clusters"] == 3 and task["outputs"][0]["cluster_id"] == cid

    # Every topic is one group: the assignment agrees with the truth exactly.
    found = assignments(client, cid, run["run_id"])
    pairs = {(corpus["truth"][d], g) for d, g in found.items()}
    assert len(pairs) == 3 and len({g for _, g in pairs}) == 3

    groups = client.get(f"/v1/clusters/{cid}/groups").json()
    assert groups["total_groups"] == 3 and groups["total_documents"] == 60
    assert sorted(g["member_count"] for g in groups["groups"]) == [20, 20, 20]
    for group in groups["groups"]:
        topic = next(t for d, t in corpus["truth"].items() if found[d] == group["cluster_id"])
        assert set(group["keywords"][:6]) <= set(TOPICS[topic].split()), group
        assert group["label"] == ", ".join(group["keywords"][:3])

    first = groups["groups"][0]["cluster_id"]
    labelled = client.patch(f"/v1/clusters/{cid}/executions/{run['run_id']}/labels", json={"labels": {first: "Mine"}})
    assert labelled.json()["label_overrides"] == {first: "Mine"}
    assert assert_error(
        client.patch(f"/v1/clusters/{cid}/executions/{run['run_id']}/labels", json={"labels": {"cl_99": "x"}}), 400
    )
    named = client.patch(f"/v1/clusters/{cid}/executions/{run['run_id']}/name", json={"run_name": "first"}).json()
    assert named["run_name"] == "first"
    assert any(g["label"] == "Mine" for g in client.get(f"/v1/clusters/{cid}/groups").json()["groups"])

    picture = client.get(f"/v1/clusters/{cid}/visualization?max_points=30").json()
    assert picture["returned_points"] == 30 and picture["n_components"] == 3 and len(picture["centroids"]) == 3
    assert {"x", "y", "z", "document_id", "label"} <= set(picture["points"][0])
    compact = client.get(f"/v1/clusters/{cid}/visualization?compact=true").json()
    assert len(compact["members"]["x"]) == 60 and len(compact["members"]["document_ids"]) == 60
    assert client.get(f"/v1/clusters/{cid}/visualization?centroids_only=true").json()["returned_points"] == 0

    export = client.get(f"/v1/clusters/{cid}/executions/{run['run_id']}/export").json()
    assert export["format"] == "parquet" and export["row_count"] == 60
    downloaded = client.get(export["download_url"])
    assert downloaded.status_code == 200
    table = pq.read_table(io.BytesIO(downloaded.content))
    assert table.num_rows == 60 and "distance_to_centroid" in table.column_names
    only = client.get(f"/v1/clusters/{cid}/executions/{run['run_id']}/export?format=csv&cluster_label=Mine")
    assert only.text.count("\n") == 21  # header and 20 rows
    assert_error(client.get(f"/v1/clusters/{cid}/executions/{run['run_id']}/export?format=xml"), 400)

    latest = client.get(f"/v1/clusters/{cid}/executions?include_vectors=true").json()
    assert latest["run_id"] == run["run_id"] and len(latest["centroids"][0]["centroid_vector"]) > 0
    listed = client.post(f"/v1/clusters/{cid}/executions/list", json={}).json()
    assert listed["total_count"] == 1 and listed["results"][0]["run_name"] == "first"
    meta = client.get(f"/v1/clusters/{cid}").json()
    assert meta["status"] == "COMPLETED" and meta["num_clusters"] == 3 and meta["last_run_id"] == run["run_id"]


@pytest.mark.parametrize(
    "method,config",
    [
        ("hdbscan", {"hdbscan_parameters": {"min_cluster_size": 5}}),
        ("agglomerative", {"algorithm_params": {"n_clusters": 3}}),
        ("gaussian_mixture", {"algorithm_params": {"n_components": 3, "covariance_type": "diag"}}),
        ("auto", {"algorithm_params": {"min_clusters": 2, "max_clusters": 5}}),
    ],
)
def test_other_algorithms_find_the_topics(
    client: TestClient, corpus: dict[str, Any], method: str, config: dict[str, Any]
) -> None:
    cid = client.post("/v1/clusters", json=vector_cluster(corpus, method, method, **config)).json()["cluster_id"]
    run = run_cluster(client, cid)
    assert run["num_clusters"] == 3, run
    if method == "auto":
        assert run["metrics"]["auto_k_selection"]["chosen_k"] == 3


def test_enrichment_replaces_previous_run_and_failed_run_changes_nothing(
    client: TestClient, corpus: dict[str, Any], runtime: Runtime
) -> None:
    body = vector_cluster(corpus, kmeans_parameters={"n_clusters": 3}) | {"enrich_source_collection": True}
    cid = client.post("/v1/clusters", json=body).json()["cluster_id"]
    first = run_cluster(client, cid)

    def enriched() -> dict[str, dict[str, Any]]:
        docs = client.post(f"/v1/collections/{corpus['collection_id']}/documents/list?limit=100", json={}).json()
        return {d["document_id"]: d for d in docs["results"]}

    docs = enriched()
    assert all(d["cluster_id"].startswith("cl_") and d["distance_to_centroid"] >= 0 for d in docs.values())
    assert all(d["cluster_label"] for d in docs.values())

    # The second run clusters two topics only: the third topic's documents lose the first run's values.
    second = run_cluster(client, cid, filters={"AND": [{"field": "topic", "operator": "ne", "value": "ocean"}]})
    assert second["num_points"] == 40
    docs = enriched()
    ocean = [d for d in docs.values() if d["topic"] == "ocean"]
    assert ocean and all("cluster_id" not in d for d in ocean)
    assert all(d.get("cluster_id", "").startswith("cl_") for d in docs.values() if d["topic"] != "ocean")

    # A run that fails (its vector column vanished) leaves the second run current and its values in place.
    runtime.jobs.stop()
    try:
        started = client.post(f"/v1/clusters/{cid}/execute").json()
        assert_error(client.post(f"/v1/clusters/{cid}/execute"), 409)  # one active run at a time
        with runtime.db.transaction() as session:
            run = session.get(ClusterRun, started["run_id"])
            assert run is not None
            run.settings = {**run.settings, "columns": {corpus["collection_id"]: {corpus["feature_uri"]: "gone"}}}
        runtime.jobs.run_pending()
    finally:
        runtime.jobs.start()
    failed = client.get(f"/v1/clusters/{cid}/executions/{started['run_id']}").json()
    assert failed["status"] == "failed" and failed["error_message"] and "Traceback" not in failed["error_message"]
    assert client.get(f"/v1/clusters/{cid}/groups").json()["run_id"] == second["run_id"]
    assert enriched() == docs
    assert client.get(f"/v1/clusters/{cid}").json()["status"] == "FAILED"
    assert first["run_id"] != second["run_id"]


def test_cancel_and_kill(client: TestClient, corpus: dict[str, Any], runtime: Runtime) -> None:
    cid = client.post("/v1/clusters", json=vector_cluster(corpus, kmeans_parameters={"n_clusters": 3})).json()[
        "cluster_id"
    ]
    runtime.jobs.stop()
    try:
        started = client.post(f"/v1/clusters/{cid}/execute").json()
        canceled = client.post(f"/v1/clusters/{cid}/executions/{started['run_id']}/cancel").json()
        assert canceled["status"] == "canceled"
        assert client.get(f"/v1/tasks/{started['task_id']}").json()["status"] == "CANCELED"
        assert_error(client.post(f"/v1/clusters/{cid}/executions/{started['run_id']}/cancel"), 409)
        again = client.post(f"/v1/clusters/{cid}/execute").json()  # nothing active any more
        assert client.delete(f"/v1/tasks/{again['task_id']}").status_code == 200
        assert client.get(f"/v1/clusters/{cid}/executions/{again['run_id']}").json()["status"] == "canceled"
        assert runtime.jobs.run_pending() == 0
    finally:
        runtime.jobs.start()
    assert_error(client.get(f"/v1/clusters/{cid}/groups"), 400)  # never completed: no groups yet


def test_attribute_clusters(client: TestClient, corpus: dict[str, Any]) -> None:
    cid = client.post(
        "/v1/clusters",
        json={
            "cluster_name": "by_topic",
            "collection_ids": ["points"],
            "cluster_type": "attribute",
            "attribute_config": {"attributes": ["topic"]},
        },
    ).json()["cluster_id"]
    run_cluster(client, cid)
    groups = client.get(f"/v1/clusters/{cid}/groups").json()["groups"]
    assert sorted(g["label"] for g in groups) == ["topic=fruit", "topic=ocean", "topic=space"]
    assert all(g["member_count"] == 20 for g in groups)
    assert_error(client.get(f"/v1/clusters/{cid}/visualization"), 400)
