"""Clusters after their first run: auto-execution after batches, label edits reaching the enriched
documents, and a delete that takes its enrichment with it (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from strataflow.index.store import quote_ids
from strataflow.runtime import Runtime
from tests.cluster_points import points_collection, write_points
from tests.collection_flows import add_object, text_collection
from tests.helpers import assert_error, wait_task

# Tests of what the engine computes, with nothing that depends on the database: SQLite alone
# (the suite's time budget; the PostgreSQL paths are the same queries as the tests above).
ENGINE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])


def _cluster(client: TestClient, corpus: dict[str, Any], **extra: Any) -> str:
    body = {
        "cluster_name": "topics",
        "collection_ids": ["points"],
        "vector_config": {
            "feature_uris": [corpus["feature_uri"]],
            "clustering_method": "kmeans",
            "kmeans_parameters": {"n_clusters": 3, "random_state": 1},
        },
        "enrich_source_collection": True,
        **extra,
    }
    created = client.post("/v1/clusters", json=body)
    assert created.status_code == 200, created.text
    return str(created.json()["cluster_id"])


def _runs(client: TestClient, cluster_id: str) -> list[dict[str, Any]]:
    return list(client.post(f"/v1/clusters/{cluster_id}/executions/list", json={}).json()["results"])


def _documents(client: TestClient) -> list[dict[str, Any]]:
    return list(client.post("/v1/collections/points/documents/list?limit=200", json={}).json()["results"])


def _batch(client: TestClient, text: str) -> None:
    object_id = add_object(client, text)
    batch = client.post("/v1/buckets/docs/batches", json={"object_ids": [object_id]}).json()
    task = client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/submit", json={})
    assert task.status_code == 200, task.text
    assert wait_task(client, task.json()["task_id"], timeout=300)["status"] == "COMPLETED"


def _wait_runs(client: TestClient, cluster_id: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 120
    while True:
        runs = _runs(client, cluster_id)
        if len(runs) >= count and all(r["status"] in ("completed", "failed", "canceled") for r in runs):
            return runs
        assert time.monotonic() < deadline, runs
        time.sleep(0.1)


def test_auto_execute_after_batches(client: TestClient, namespace: dict[str, Any], runtime: Runtime) -> None:
    corpus = points_collection(client, runtime)
    cid = _cluster(client, corpus, auto_execute_on_batch=True, auto_execute_cooldown_seconds=0)
    apps = client.get("/v1/collections/points").json()["cluster_applications"]
    assert apps == [
        {
            "cluster_id": cid,
            "auto_execute_on_batch": True,
            "min_document_threshold": None,
            "cooldown_seconds": 0,
            "execution_phase": 2,
            "priority": 0,
        }
    ]
    assert runtime.triggers is not None and runtime.triggers.run_pending() == 0  # no batch yet: nothing runs

    _batch(client, "apple banana orchard harvest")  # the watcher in the trigger loop re-runs the cluster
    [run] = _wait_runs(client, cid, 1)
    assert run["status"] == "completed" and run["num_points"] == 61
    assert runtime.triggers.run_pending() == 0  # that batch is answered: no second run
    enriched = [d for d in _documents(client) if d.get("cluster_id")]
    assert len(enriched) == 61

    # A threshold above the collection's size: the next batch is answered without a run.
    patched = client.patch(
        "/v1/collections/points",
        json={"cluster_applications": [{"cluster_id": "topics", "min_document_threshold": 1000}]},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["cluster_applications"][0]["cluster_id"] == cid  # stored by id
    _batch(client, "rocket orbit launch")
    runtime.triggers.run_pending()
    assert len(_runs(client, cid)) == 1

    # Bad applications: an unknown cluster, a cluster that does not read the collection.
    assert_error(client.patch("/v1/collections/points", json={"cluster_applications": [{"cluster_id": "nope"}]}), 404)
    assert_error(
        client.patch(
            "/v1/collections/points", json={"cluster_applications": [{"cluster_id": cid, "cooldown_seconds": -1}]}
        ),
        400,
    )
    assert_error(
        client.post(
            "/v1/clusters",
            json={"collection_ids": ["points"], "auto_execute_on_batch": True, "auto_execute_cooldown_seconds": -5},
        ),
        422,
    )

    # Deleting the cluster detaches it and removes what its run wrote on the documents.
    assert client.delete(f"/v1/clusters/{cid}").status_code == 200
    assert client.get("/v1/collections/points").json()["cluster_applications"] == []
    assert not [d for d in _documents(client) if "cluster_id" in d or "cluster_label" in d]


def test_edited_labels_reach_the_documents(client: TestClient, namespace: dict[str, Any], runtime: Runtime) -> None:
    corpus = points_collection(client, runtime)
    cid = _cluster(client, corpus)
    started = client.post(f"/v1/clusters/{cid}/execute", json={}).json()
    assert wait_task(client, started["task_id"], timeout=60)["status"] == "COMPLETED"
    run_id = started["run_id"]
    docs = {d["document_id"]: d for d in _documents(client)}
    group = docs["doc_space_000"]["cluster_id"]
    edited = client.patch(f"/v1/clusters/{cid}/executions/{run_id}/labels", json={"labels": {group: "Space"}})
    assert edited.status_code == 200, edited.text
    assert edited.json()["documents_relabeled"] == 20
    after = {d["document_id"]: d for d in _documents(client)}
    assert {after[f"doc_space_{i:03d}"]["cluster_label"] for i in range(20)} == {"Space"}
    assert after["doc_fruit_000"]["cluster_label"] == docs["doc_fruit_000"]["cluster_label"] != "Space"

    # Mode 'assign': no fit, each document joins its nearest centroid; groups keep their ids and names.
    assigned = client.post(f"/v1/clusters/{cid}/execute", json={"mode": "assign", "assignment_threshold": 0.5})
    assert assigned.status_code == 200, assigned.text
    assert wait_task(client, assigned.json()["task_id"], timeout=60)["status"] == "COMPLETED"
    groups = client.get(f"/v1/clusters/{cid}/groups").json()["groups"]
    assert {g["cluster_id"]: g["member_count"] for g in groups}[group] == 20
    assert {g["cluster_id"]: g["label"] for g in groups}[group] == "Space"
    assert {d["document_id"]: d for d in _documents(client)}["doc_space_003"]["cluster_label"] == "Space"
    strict = client.post(f"/v1/clusters/{cid}/execute", json={"mode": "assign", "assignment_threshold": 1.0})
    assert wait_task(client, strict.json()["task_id"], timeout=60)["status"] == "COMPLETED"
    run = client.get(f"/v1/clusters/{cid}/executions/{strict.json()['run_id']}").json()
    assert run["num_clusters"] == 0  # nothing is that close: every document is noise
    assert_error(client.post(f"/v1/clusters/{cid}/execute", json={"mode": "composite"}), 400)


def test_taxonomy_from_a_cluster_run_and_from_documents(
    client: TestClient, namespace: dict[str, Any], runtime: Runtime
) -> None:
    corpus = points_collection(client, runtime)
    cid = _cluster(client, corpus, enrich_source_collection=False)
    run_id = client.post(f"/v1/clusters/{cid}/execute", json={}).json()["run_id"]
    runs = _wait_runs(client, cid, 1)
    assert runs[0]["status"] == "completed"
    groups = {g["cluster_id"]: g for g in client.get(f"/v1/clusters/{cid}/groups").json()["groups"]}
    # Not enriching its source: the run went to the cluster's output collection.
    view = client.get(f"/v1/clusters/{cid}").json()
    [output] = view["output_collection_ids"]
    assert view["output_collection_names"] == ["topics_output"]
    out = client.post(f"/v1/collections/{output}/documents/list?limit=200", json={}).json()["results"]
    centroids = [d for d in out if d["is_centroid"]]
    assert len(out) == 63 and sorted(d["member_count"] for d in centroids) == [20, 20, 20]
    member = next(d for d in out if d.get("source_document_id") == "doc_space_000")
    assert member["cluster_label"] == groups[member["cluster_id"]]["label"] and member["run_id"] == run_id

    body = {"taxonomy_name": "topics", "cluster_run": {"cluster_id": cid, "run_id": run_id}}
    promoted = client.post("/v1/taxonomies/from-documents", json=body)
    assert promoted.status_code == 200, promoted.text
    answer = promoted.json()
    assert answer["taxonomy_created"] is True and len(answer["nodes"]) == 3
    assert sorted(n["member_count"] for n in answer["nodes"]) == [20, 20, 20]
    taxonomy = client.get("/v1/taxonomies/topics").json()
    assert taxonomy["config"]["source_collection"]["collection_id"] == answer["node_collection_id"]
    nodes = client.get(f"/v1/collections/{answer['node_collection_id']}").json()
    assert nodes["source"]["type"] == "taxonomy"
    assert_error(client.post("/v1/taxonomies/from-documents", json=body), 409)  # the name is taken
    assert_error(client.post("/v1/taxonomies/from-documents", json={"taxonomy_name": "x"}), 400)  # no source

    # Applied to the clustered collection, each document is labelled with its own cluster's label.
    attached = client.patch("/v1/collections/points", json={"taxonomy_applications": [{"taxonomy_id": "topics"}]})
    assert attached.status_code == 200, attached.text
    task = client.post("/v1/collections/points/apply-taxonomy", json={"taxonomy_id": "topics"}).json()
    assert wait_task(client, task["task_id"], timeout=120)["status"] == "COMPLETED"
    labels = assignments_by_label(client, cid, run_id, groups)
    docs = _documents(client)
    assert all(d["topics_label"] == labels[d["document_id"]] for d in docs)

    # A node of its own from three fruit documents (one reference cannot give a vector: skipped).
    refs = [{"collection_id": "points", "document_id": f"doc_fruit_{i:03d}"} for i in range(3)]
    refs.append({"collection_id": "points", "document_id": "doc_missing"})
    node = client.post(
        "/v1/taxonomies/topics/nodes/from-documents",
        json={"node_label": "Fruit", "documents": refs, "node_fields": {"description": "orchard things"}},
    )
    assert node.status_code == 200, node.text
    assert node.json()["documents_used"] == 3 and node.json()["documents_skipped"][0]["reason"] == "document not found"
    assert node.json()["taxonomy_created"] is False and node.json()["node_label"] == "Fruit"
    matches = client.post(
        "/v1/taxonomies/topics/execute",
        json={"source_documents": [{"document_id": "doc_fruit_005", "collection_id": corpus["collection_id"]}]},
    )
    assert matches.status_code == 200, matches.text
    bad = client.post("/v1/taxonomies/topics/nodes/from-documents", json={"node_label": "X", "documents": refs[3:]})
    assert_error(bad, 400)

    # A second run replaces the output collection's documents; deleting the cluster removes it.
    client.post(f"/v1/clusters/{cid}/execute", json={})
    second = _wait_runs(client, cid, 2)
    assert {r["status"] for r in second} == {"completed"}
    out = client.post(f"/v1/collections/{output}/documents/list?limit=200", json={}).json()["results"]
    assert len(out) == 63 and {d["run_id"] for d in out} == {second[0]["run_id"]}
    edited = next(d["cluster_id"] for d in out if d.get("source_document_id") == "doc_ocean_000")
    client.patch(f"/v1/clusters/{cid}/executions/{second[0]['run_id']}/labels", json={"labels": {edited: "Sea"}})
    out = client.post(f"/v1/collections/{output}/documents/list?limit=200", json={}).json()["results"]
    assert len(out) == 63 and sum(d["cluster_label"] == "Sea" for d in out) == 21  # 20 members and the centroid
    assert client.delete(f"/v1/clusters/{cid}").status_code == 200
    assert_error(client.get(f"/v1/collections/{output}"), 404)


def assignments_by_label(
    client: TestClient, cluster_id: str, run_id: str, groups: dict[str, dict[str, Any]]
) -> dict[str, str]:
    body = client.get(f"/v1/clusters/{cluster_id}/executions/{run_id}/export?format=csv").text
    return {r["document_id"]: groups[r["cluster_id"]]["label"] for r in csv.DictReader(io.StringIO(body))}


@ENGINE_ONLY
def test_preprocessing_and_hierarchical_subclusters(
    client: TestClient, namespace: dict[str, Any], runtime: Runtime
) -> None:
    corpus = points_collection(client, runtime)

    def create(name: str, **vector: Any) -> Any:
        config = {"feature_uris": [corpus["feature_uri"]], "clustering_method": "kmeans", **vector}
        return client.post(
            "/v1/clusters", json={"cluster_name": name, "collection_ids": ["points"], "vector_config": config}
        )

    assert_error(create("u", preprocessing_steps=[{"method": "umap"}]), 400)
    assert_error(create("t", preprocessing_steps=[{"method": "tsne", "n_components": 9}]), 400)
    assert_error(create("w", preprocessing_steps=[{"method": "whitening", "bogus": 1}]), 400)

    # Two groups asked for over three topics: one group holds two topics, and the hierarchy splits it.
    made = create(
        "tree",
        kmeans_parameters={"n_clusters": 2, "random_state": 3},
        hierarchical=True,
        max_hierarchy_depth=2,
        preprocessing_steps=[{"method": "tsne", "n_components": 2, "perplexity": 10}],
    )
    assert made.status_code == 200, made.text
    cid = made.json()["cluster_id"]
    run_id = client.post(f"/v1/clusters/{cid}/execute", json={}).json()["run_id"]
    [run] = _wait_runs(client, cid, 1)
    assert run["status"] == "completed", run
    groups = client.get(f"/v1/clusters/{cid}/groups").json()["groups"]
    assert len(groups) == 3 and sorted(g["member_count"] for g in groups) == [20, 20, 20]
    assert sum("_sub_" in g["cluster_id"] for g in groups) == 2
    view = client.get(f"/v1/clusters/{cid}").json()
    assert view["hierarchy_detected"] is True and view["hierarchical_vector"] is True
    assert len(view["hierarchy_relationships"]) == 2
    assert view["preprocessing_steps"][0]["method"] == "tsne"
    rows = assignments_by_label(client, cid, run_id, {g["cluster_id"]: g for g in groups})
    by_topic: dict[str, set[str]] = {}
    for doc, label in rows.items():
        by_topic.setdefault(corpus["truth"][doc], set()).add(label)
    assert all(len(labels) == 1 for labels in by_topic.values()) and len(set().union(*by_topic.values())) == 3

    # Whitening is linear: it runs and the three topics come out.
    white = create("white", kmeans_parameters={"n_clusters": 3}, preprocessing_steps=[{"method": "whitening"}])
    assert white.status_code == 200, white.text
    client.post(f"/v1/clusters/{white.json()['cluster_id']}/execute", json={})
    [done] = _wait_runs(client, white.json()["cluster_id"], 1)
    assert done["status"] == "completed" and done["num_clusters"] == 3


@ENGINE_ONLY
def test_composite_cluster_groups_the_centroids_of_runs(
    client: TestClient, namespace: dict[str, Any], runtime: Runtime
) -> None:
    corpus = points_collection(client, runtime)
    sources = []
    for name, seed in (("first", 1), ("second", 2)):
        cid = _cluster(
            client,
            corpus,
            cluster_name=name,
            vector_config={
                "feature_uris": [corpus["feature_uri"]],
                "clustering_method": "kmeans",
                "kmeans_parameters": {"n_clusters": 3, "random_state": seed},
            },
        )
        client.post(f"/v1/clusters/{cid}/execute", json={})
        assert _wait_runs(client, cid, 1)[0]["status"] == "completed"
        sources.append(cid)
    vector = {
        "feature_uris": [corpus["feature_uri"]],
        "clustering_method": "kmeans",
        "kmeans_parameters": {"n_clusters": 3},
    }
    created = client.post(
        "/v1/clusters", json={"cluster_name": "meta", "source_cluster_ids": sources, "vector_config": vector}
    )
    assert created.status_code == 200, created.text
    meta = created.json()
    assert meta["source_cluster_ids"] == sources and meta["input_collections"] == [corpus["collection_id"]]
    started = client.post(f"/v1/clusters/{meta['cluster_id']}/execute", json={})  # no mode: composite
    assert wait_task(client, started.json()["task_id"], timeout=60)["status"] == "COMPLETED"
    run = client.get(f"/v1/clusters/{meta['cluster_id']}/executions/{started.json()['run_id']}").json()
    assert run["mode"] == "composite" and len(run["source_execution_ids"]) == 2 and run["num_points"] == 6
    mapping = run["composite_mapping"]
    assert len(mapping) == 3 and all(len(held) == 2 for held in mapping.values())
    assert all({s["source_run_id"] for s in held} == set(run["source_execution_ids"]) for held in mapping.values())

    wrong = dict(vector, feature_uris=["mixpeek://text_extractor@v1/other"])
    assert_error(client.post("/v1/clusters", json={"source_cluster_ids": sources, "vector_config": wrong}), 400)
    one = client.post(
        f"/v1/clusters/{meta['cluster_id']}/execute", json={"mode": "composite", "source_execution_ids": ["run_x"]}
    )
    assert_error(one, 400)


@ENGINE_ONLY
def test_hierarchy_inferred_from_schemas_and_from_cluster_runs(
    client: TestClient, namespace: dict[str, Any], runtime: Runtime
) -> None:
    corpus = points_collection(client, runtime)
    fruit = text_collection(
        client,
        "fruit",
        {"type": "bucket", "bucket_ids": ["docs"]},
        split_by="none",
        model="minilm",
        passthrough=("title", "lang"),
    )
    write_points(runtime, fruit["collection_id"])
    others = [f"doc_{t}_{i:03d}" for t in ("space", "ocean") for i in range(20)]
    runtime.index.delete(fruit["collection_id"], f"document_id IN ({quote_ids(others)})")
    uri = corpus["feature_uri"]
    retriever = client.post(
        "/v1/retrievers",
        json={
            "retriever_name": "both",
            "collection_identifiers": ["points", "fruit"],
            "input_schema": {"vec": {"type": "array", "required": True}},
            "stages": [
                {
                    "stage_name": "s",
                    "config": {
                        "stage_id": "feature_search",
                        "parameters": {
                            "searches": [{"feature_uri": uri, "query": "{{INPUT.vec}}", "top_k": 5}],
                            "final_top_k": 5,
                        },
                    },
                }
            ],
        },
    )
    assert retriever.status_code == 200, retriever.text

    def hierarchy(name: str, **inference: Any) -> Any:
        config = {
            "taxonomy_type": "hierarchical",
            "retriever_id": retriever.json()["retriever_id"],
            "input_mappings": [{"input_key": "vec", "source_type": "vector", "path": uri}],
            "inference_collections": ["points", "fruit"],
            **inference,
        }
        return client.post("/v1/taxonomies", json={"taxonomy_name": name, "config": config})

    def parents(response: Any) -> dict[str, str | None]:
        assert response.status_code == 200, response.text
        nodes = response.json()["config"]["hierarchical_nodes"]
        assert all(n["inferred"] for n in nodes)
        return {n["collection_id"]: n.get("parent_collection_id") for n in nodes}

    expected = {corpus["collection_id"]: None, fruit["collection_id"]: corpus["collection_id"]}
    assert parents(hierarchy("by_schema", inference_strategy="schema")) == expected

    cid = _cluster(client, corpus, collection_ids=["points", "fruit"], enrich_source_collection=False)
    client.post(f"/v1/clusters/{cid}/execute", json={})
    assert _wait_runs(client, cid, 1)[0]["status"] == "completed"
    assert parents(hierarchy("by_clusters", inference_strategy="cluster", cluster_ids=[cid])) == expected
    assert_error(hierarchy("no_runs", inference_strategy="cluster"), 400)  # no cluster_ids
    assert_error(hierarchy("llm", inference_strategy="llm"), 400)
