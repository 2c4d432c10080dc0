"""The contract's remaining cluster options, over the API on SQLite and PostgreSQL:
`layout_stability` (the picture kept still across runs), `face_cluster_merge` (one identity split in
two groups merged back, by centroid similarity and shared frames or scenes), `output_strategy:
per_feature` (one output collection per feature), the columnar output writer, and their bad input.

Documents are written straight into real collections' LanceDB tables with vectors whose right
grouping is known.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from strataflow.engine.clusters import output_documents
from strataflow.index.records import StoredDocument, table_schema, to_arrow, vector_columns_of
from strataflow.runtime import Runtime
from strataflow.store.tables import Collection
from tests.cluster_points import points_collection
from tests.helpers import assert_error, wait_task


def _run(client: TestClient, cluster_id: str, **body: Any) -> dict[str, Any]:
    started = client.post(f"/v1/clusters/{cluster_id}/execute", json=body)
    assert started.status_code == 200, started.text
    task = wait_task(client, started.json()["task_id"], timeout=120)
    run = client.get(f"/v1/clusters/{cluster_id}/executions/{started.json()['run_id']}").json()
    assert task["status"] == "COMPLETED" and run["status"] == "completed", run
    return dict(run)


def _coords(client: TestClient, cluster_id: str, run_id: str) -> dict[str, tuple[float, float]]:
    body = client.get(f"/v1/clusters/{cluster_id}/visualization?compact=true&run_id={run_id}").json()["members"]
    return {d: (x, y) for d, x, y in zip(body["document_ids"], body["x"], body["y"], strict=True)}


def _cluster(client: TestClient, corpus: dict[str, Any], name: str, **vector: Any) -> str:
    body = {
        "cluster_name": name,
        "collection_ids": [corpus["collection_id"]],
        "vector_config": {"feature_uris": [corpus["feature_uri"]], "clustering_method": "kmeans", **vector},
    }
    created = client.post("/v1/clusters", json=body)
    assert created.status_code == 200, created.text
    return str(created.json()["cluster_id"])


def test_layout_stability_align_transform_none(client: TestClient, namespace: dict[str, Any], runtime: Runtime) -> None:
    corpus = points_collection(client, runtime)
    cid = _cluster(client, corpus, "stable", kmeans_parameters={"n_clusters": 3})
    first = _run(client, cid)
    assert first["layout_stability_applied"] == "none" and "first run" in first["layout_stability_reason"]

    # The default is 'align': a re-run (another seed, so another PCA sign and k-means start) lands
    # on the first run's picture: the same documents within a hair of their old places.
    assert client.patch(f"/v1/clusters/{cid}", json={"algorithm_params": {"random_state": 5}}).status_code == 200
    second = _run(client, cid)
    assert second["layout_stability_applied"] == "aligned", second
    assert "60 shared documents" in second["layout_stability_reason"]
    before, after = _coords(client, cid, first["run_id"]), _coords(client, cid, second["run_id"])
    spread = np.ptp(np.asarray(list(before.values())), axis=0).max()
    moved = max(np.hypot(after[d][0] - before[d][0], after[d][1] - before[d][1]) for d in before)
    assert moved < 0.05 * spread, (moved, spread)

    # 'transform' (for this run only) reuses the second run's saved projection: pixel-stable.
    third = _run(client, cid, layout_stability="transform")
    assert third["layout_stability_applied"] == "transform"
    again = _coords(client, cid, third["run_id"])
    assert max(abs(again[d][0] - after[d][0]) + abs(again[d][1] - after[d][1]) for d in after) < 1e-4
    assert client.get(f"/v1/clusters/{cid}").json()["layout_stability"] is None  # the override was not kept

    # 'none' stored on the cluster: an independent layout, and the run says so.
    assert client.patch(f"/v1/clusters/{cid}", json={"layout_stability": "none"}).json()["layout_stability"] == "none"
    fourth = _run(client, cid)
    assert fourth["layout_stability_applied"] == "none" and "'none'" in fourth["layout_stability_reason"]

    # Too few shared documents (a filter keeps 10 of the fruit): the raw layout, with the reason.
    fewer = _run(
        client,
        cid,
        layout_stability="align",
        filters={"AND": [{"field": "topic", "operator": "eq", "value": "fruit"}]},
        sample_size=10,
    )
    assert fewer["layout_stability_applied"] == "none"
    assert "only 10 shared documents" in fewer["layout_stability_reason"]

    # A different number of components: 'transform' cannot reuse the saved projection, aligns instead.
    run_3d = _run(client, cid, layout_stability="transform", vis_n_components=3)
    assert run_3d["layout_stability_applied"] in ("aligned", "none")
    assert "no compatible saved projection" in run_3d["layout_stability_reason"]

    assert_error(client.post(f"/v1/clusters/{cid}/execute", json={"layout_stability": "sideways"}), 422)
    assert_error(client.patch(f"/v1/clusters/{cid}", json={"layout_stability": "sideways"}), 422)


def _faces(runtime: Runtime, collection_id: str, column: str, dims: int, second_video: str) -> None:
    """Identity A split in two looks (A1, A2: centroid cosine about 0.6) seen in the same frames of
    `video1` at nearly the same boxes (unless `second_video` moves A2 elsewhere), in different
    `scene_id`s but the same `shot`s; identity B apart."""
    rng = np.random.default_rng(3)

    def centre(**axes: float) -> np.ndarray:
        v = np.zeros(dims)
        for axis, value in axes.items():
            v[int(axis[1:])] = value
        return v

    looks = {
        "a1": (centre(e0=5.0, e1=2.5), "video1", [10, 10, 50, 50], "s1"),
        "a2": (centre(e0=5.0, e1=-2.5), second_video, [12, 12, 52, 52], "s2"),
        "b": (centre(e2=5.0), "video1", [200, 200, 240, 240], "s9"),
    }
    documents = []
    for look, (vector, video, box, scene) in looks.items():
        for i in range(12):
            documents.append(
                StoredDocument(
                    document_id=f"face_{look}_{i:02d}",
                    collection_id=collection_id,
                    payload={
                        "text": f"face {look}",
                        "bbox": box,
                        "frame_number": i,
                        "scene_id": f"{scene}_{i % 2}",
                        "shot": f"shot_{i % 2}" if look != "b" else "shot_b",
                    },
                    internal={"lineage": {"source_object_id": video}},
                    vectors={column: (vector + rng.normal(0, 0.05, dims)).tolist()},
                )
            )
    runtime.index.upsert(collection_id, documents)


def test_face_cluster_merge(client: TestClient, namespace: dict[str, Any], runtime: Runtime) -> None:
    from tests.collection_flows import make_bucket, text_collection

    make_bucket(client)
    created = text_collection(
        client, "faces", {"type": "bucket", "bucket_ids": ["docs"]}, split_by="none", model="minilm"
    )
    cid = created["collection_id"]
    feature = client.get(f"/v1/collections/{cid}/features").json()["features"][0]
    column, dims = feature["vector_index"]["name"], int(feature["vector_index"]["dimensions"])
    _faces(runtime, cid, column, dims, "video1")

    merge = {"centroid_cosine_threshold": 0.5, "bbox_iou_threshold": 0.4, "scene_jaccard_threshold": 0.99}
    body = {
        "cluster_name": "people",
        "collection_ids": ["faces"],
        "vector_config": {
            "feature_uris": [feature["feature_uri"]],
            "clustering_method": "agglomerative",
            "algorithm_params": {"n_clusters": 3},
            "face_cluster_merge": merge,
        },
    }
    cluster = client.post("/v1/clusters", json=body)
    assert cluster.status_code == 200, cluster.text
    assert cluster.json()["face_cluster_merge"]["bbox_iou_threshold"] == 0.4
    people = cluster.json()["cluster_id"]

    # A1 and A2 share every frame at overlapping boxes (IoU 0.82): one identity again; B stays apart.
    run = _run(client, people)
    assert run["num_clusters"] == 2, run
    report = run["metrics"]["face_cluster_merge"]
    assert report["groups_before"] == 3 and report["groups_after"] == 2 and report["merge_count"] == 1
    assert report["merges"][0]["bbox_iou"] > 0.8 and report["merges"][0]["centroid_cosine"] > 0.5
    export = client.get(f"/v1/clusters/{people}/executions/{run['run_id']}/export?format=csv").text
    groups = {r["document_id"]: r["cluster_id"] for r in csv.DictReader(io.StringIO(export))}
    assert groups["face_a1_00"] == groups["face_a2_05"] != groups["face_b_00"]

    # Boxes must overlap more than they do: no spatial agreement, so similar centroids alone stay apart.
    strict = {**merge, "bbox_iou_threshold": 0.95}
    assert client.patch(f"/v1/clusters/{people}", json={"face_cluster_merge": strict}).status_code == 200
    assert _run(client, people)["num_clusters"] == 3

    # Scenes agree instead, read from another field (A1's and A2's shots are shot_0 and shot_1: Jaccard 1).
    scenes = {**strict, "scene_jaccard_threshold": 0.9, "scene_field": "shot"}
    patched = client.patch(f"/v1/clusters/{people}", json={"face_cluster_merge": scenes})
    assert patched.json()["face_cluster_merge"]["scene_jaccard_threshold"] == 0.9, patched.text
    merged = _run(client, people)
    assert merged["num_clusters"] == 2, merged["metrics"]["face_cluster_merge"]
    assert merged["num_clusters"] == 2 and merged["metrics"]["face_cluster_merge"]["merges"][0]["scene_jaccard"] == 1.0

    # Centroids not similar enough: nothing merges, whatever the boxes say.
    client.patch(f"/v1/clusters/{people}", json={"face_cluster_merge": {**merge, "centroid_cosine_threshold": 0.9}})
    apart = _run(client, people)
    assert apart["num_clusters"] == 3, apart["metrics"]["face_cluster_merge"]

    # enabled=false keeps the config and turns the pass off.
    off = client.patch(f"/v1/clusters/{people}", json={"face_cluster_merge": {**merge, "enabled": False}}).json()
    assert off["face_cluster_merge"]["enabled"] is False
    plain = _run(client, people)
    assert plain["num_clusters"] == 3 and "face_cluster_merge" not in plain["metrics"]

    # Bad input: thresholds outside [0, 1], a merge config on an attribute cluster.
    bad = {**body, "cluster_name": "bad"}
    bad["vector_config"] = {**body["vector_config"], "face_cluster_merge": {"centroid_cosine_threshold": 1.5}}
    assert_error(client.post("/v1/clusters", json=bad), 422)
    attribute = client.post(
        "/v1/clusters",
        json={"cluster_name": "by_text", "collection_ids": ["faces"], "attribute_config": {"attributes": ["text"]}},
    ).json()["cluster_id"]
    assert_error(client.patch(f"/v1/clusters/{attribute}", json={"face_cluster_merge": merge}), 400)
    assert client.get("/v1/clusters").json()["total_count"] == 2  # nothing half-written


def test_face_merge_needs_shared_frames_of_the_same_video(
    client: TestClient, namespace: dict[str, Any], runtime: Runtime
) -> None:
    """The same frame numbers in another video are not the same frames: no box evidence."""
    from tests.collection_flows import make_bucket, text_collection

    make_bucket(client)
    cid = text_collection(client, "faces", {"type": "bucket", "bucket_ids": ["docs"]}, split_by="none", model="minilm")[
        "collection_id"
    ]
    feature = client.get(f"/v1/collections/{cid}/features").json()["features"][0]
    _faces(runtime, cid, feature["vector_index"]["name"], int(feature["vector_index"]["dimensions"]), "video2")
    body = {
        "cluster_name": "people",
        "collection_ids": ["faces"],
        "vector_config": {
            "feature_uris": [feature["feature_uri"]],
            "clustering_method": "agglomerative",
            "algorithm_params": {"n_clusters": 3},
            "face_cluster_merge": {"centroid_cosine_threshold": 0.5, "scene_jaccard_threshold": 0.99},
        },
    }
    run = _run(client, client.post("/v1/clusters", json=body).json()["cluster_id"])
    assert run["num_clusters"] == 3 and run["metrics"]["face_cluster_merge"]["merge_count"] == 0


def _two_feature_collection(client: TestClient, runtime: Runtime) -> tuple[str, list[dict[str, Any]]]:
    """A multimodal collection with two vector indexes, its documents written straight in."""
    schema = {"properties": {"clip": {"type": "video"}, "title": {"type": "string"}}}
    assert client.post("/v1/buckets", json={"bucket_name": "videos", "bucket_schema": schema}).status_code == 200
    created = client.post(
        "/v1/collections",
        json={
            "collection_name": "scenes",
            "source": {"type": "bucket", "bucket_ids": ["videos"]},
            "feature_extractor": {
                "feature_extractor_name": "multimodal_extractor",
                "version": "v1",
                "input_mappings": {"video": "clip"},
                "parameters": {
                    "extractor_type": "multimodal_extractor",
                    "run_transcription": True,
                    "run_transcription_embedding": True,
                    "run_ocr": False,
                },
            },
        },
    )
    assert created.status_code == 200, created.text
    cid = created.json()["collection_id"]
    features = client.get(f"/v1/collections/{cid}/features").json()["features"]
    assert len(features) == 2
    rng = np.random.default_rng(1)
    documents = []
    for group in range(2):
        for i in range(15):
            vectors = {}
            for f in features:
                dims = int(f["vector_index"]["dimensions"])
                centre = np.zeros(dims)
                centre[group * 5 : group * 5 + 5] = 3.0
                vectors[f["vector_index"]["name"]] = (centre + rng.normal(0, 0.1, dims)).tolist()
            documents.append(
                StoredDocument(f"scene_{group}_{i:02d}", cid, {"text": f"group {group}"}, {}, vectors)  # type: ignore[arg-type]
            )
    runtime.index.upsert(cid, documents)
    return cid, features


def test_per_feature_output_collections(client: TestClient, namespace: dict[str, Any], runtime: Runtime) -> None:
    cid, features = _two_feature_collection(client, runtime)
    uris = [f["feature_uri"] for f in features]
    body = {
        "cluster_name": "scenes_split",
        "collection_ids": [cid],
        "vector_config": {
            "feature_uris": uris,
            "clustering_method": "kmeans",
            "kmeans_parameters": {"n_clusters": 2},
            "output_strategy": "per_feature",
        },
    }
    created = client.post("/v1/clusters", json=body)
    assert created.status_code == 200, created.text
    view = created.json()
    names = [f"scenes_split_{f['vector_index']['name']}_output" for f in features]
    assert view["output_collection_names"] == names and len(view["output_collection_ids"]) == 2
    run = _run(client, view["cluster_id"])
    assert run["num_clusters"] == 2
    centroid_of = {
        g["cluster_id"]: g["centroid_vector"]
        for g in client.get(f"/v1/clusters/{view['cluster_id']}/executions?include_vectors=true").json()["centroids"]
    }
    offset = 0
    for output_id, feature in zip(view["output_collection_ids"], features, strict=True):
        index = feature["vector_index"]
        collection = client.get(f"/v1/collections/{output_id}").json()
        assert [v["feature_uri"] for v in collection["vector_indexes"]] == [feature["feature_uri"]]
        docs = client.post(f"/v1/collections/{output_id}/documents/list?limit=100", json={}).json()["results"]
        assert len(docs) == 32 and sum(d["is_centroid"] for d in docs) == 2
        with runtime.db.read_session() as session:
            row = session.get(Collection, output_id)
            assert row is not None
        for doc in (d for d in docs if d["is_centroid"]):
            stored = runtime.index.get(output_id, doc["document_id"], with_vectors=True)
            assert stored is not None
            block = centroid_of[doc["cluster_id"]][offset : offset + int(index["dimensions"])]
            assert np.allclose(stored.vectors[index["name"]], block, atol=1e-5)
        offset += int(index["dimensions"])

    # Label edits reach both collections; deleting the cluster removes both.
    first = next(iter(centroid_of))
    client.patch(
        f"/v1/clusters/{view['cluster_id']}/executions/{run['run_id']}/labels", json={"labels": {first: "Mine"}}
    )
    for output_id in view["output_collection_ids"]:
        docs = client.post(f"/v1/collections/{output_id}/documents/list?limit=100", json={}).json()["results"]
        assert sum(d["cluster_label"] == "Mine" for d in docs) == 16
    assert client.delete(f"/v1/clusters/{view['cluster_id']}").status_code == 200
    for output_id in view["output_collection_ids"]:
        assert_error(client.get(f"/v1/collections/{output_id}"), 404)

    # per_feature with enrichment has no output collection to split: a 400, nothing created.
    enriching = {**body, "cluster_name": "x", "enrich_source_collection": True}
    assert_error(client.post("/v1/clusters", json=enriching), 400)
    assert client.get("/v1/clusters").json()["total_count"] == 0
    assert not [c for c in client.get("/v1/collections").json()["results"] if c["collection_name"].startswith("x_")]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_columnar_members_match_the_per_document_writer(
    client: TestClient, namespace: dict[str, Any], runtime: Runtime
) -> None:
    """The whole-run writer builds member rows as Arrow columns; they must be the rows `_document`
    would give, with ids that need JSON escaping (quotes, backslashes, non-ASCII, control characters)."""
    corpus = points_collection(client, runtime)
    odd = ['q"uote', "back\\slash", "ünï", "tab\there", "plain"]
    with runtime.db.read_session() as session:
        source = session.get(Collection, corpus["collection_id"])
        assert source is not None
    dims = int(source.vector_indexes[0]["index"]["dimensions"])
    runtime.index.upsert(
        corpus["collection_id"],
        [
            StoredDocument(d, corpus["collection_id"], {"text": "odd"}, {}, {corpus["column"]: [1.0] * dims})
            for d in odd
        ],
    )
    cid = _cluster(client, corpus, "odd", kmeans_parameters={"n_clusters": 3})
    run = _run(client, cid)
    output_id = client.get(f"/v1/clusters/{cid}").json()["output_collection_ids"][0]
    table = runtime.index._table(output_id)
    stored = {r["document_id"]: r for r in table.to_arrow().to_pylist()}
    with runtime.db.read_session() as session:
        output = session.get(Collection, output_id)
        assert output is not None
    labels = {g["cluster_id"]: g["label"] for g in client.get(f"/v1/clusters/{cid}/groups").json()["groups"]}
    export = client.get(f"/v1/clusters/{cid}/executions/{run['run_id']}/export?format=csv").text
    rows = list(csv.DictReader(io.StringIO(export)))
    assert {r["document_id"] for r in rows} >= set(odd)
    schema = table_schema(vector_columns_of(table.schema))
    for row in rows:
        distance = float(row["distance_to_centroid"]) if row["distance_to_centroid"] else None
        doc_id = output_documents._id(run["run_id"], "member", row["collection_id"], row["document_id"])
        expected = to_arrow(
            [
                output_documents._document(
                    output,
                    doc_id,
                    output_documents._member(
                        run["run_id"], row["cluster_id"], labels, row["document_id"], row["collection_id"], distance
                    ),
                    {},
                )
            ],
            schema,
        ).to_pylist()[0]
        got = stored[doc_id]
        for name in ("created_at", "updated_at"):
            expected.pop(name), got.pop(name)
        import json

        for name in ("payload", "internal"):
            e, g = json.loads(expected.pop(name)), json.loads(got.pop(name))
            if name == "payload" and e["distance_to_centroid"] is not None:
                assert abs(e.pop("distance_to_centroid") - g.pop("distance_to_centroid")) < 1e-5
            assert e == g, (name, e, g)
        assert got == expected


def test_failed_run_leaves_the_output_collection_and_the_picture(
    client: TestClient, namespace: dict[str, Any], runtime: Runtime
) -> None:
    """A run that fails keeps the previous run current: its output documents, groups and picture."""
    from strataflow.store.tables import ClusterRun

    corpus = points_collection(client, runtime)
    cid = _cluster(client, corpus, "keeps", kmeans_parameters={"n_clusters": 3})
    first = _run(client, cid)
    output_id = client.get(f"/v1/clusters/{cid}").json()["output_collection_ids"][0]

    def documents() -> list[dict[str, Any]]:
        body = client.post(f"/v1/collections/{output_id}/documents/list?limit=200", json={}).json()
        return sorted(body["results"], key=lambda d: d["document_id"])

    before = documents()
    picture = _coords(client, cid, first["run_id"])
    runtime.jobs.stop()
    try:
        started = client.post(f"/v1/clusters/{cid}/execute", json={}).json()
        with runtime.db.transaction() as session:
            run = session.get(ClusterRun, started["run_id"])
            assert run is not None
            run.settings = {**run.settings, "columns": {corpus["collection_id"]: {corpus["feature_uri"]: "gone"}}}
        runtime.jobs.run_pending()
    finally:
        runtime.jobs.start()
    failed = client.get(f"/v1/clusters/{cid}/executions/{started['run_id']}").json()
    assert failed["status"] == "failed" and "Traceback" not in failed["error_message"]
    assert documents() == before and {d["run_id"] for d in before} == {first["run_id"]}
    assert client.get(f"/v1/clusters/{cid}/groups").json()["run_id"] == first["run_id"]
    current = client.get(f"/v1/clusters/{cid}/visualization?compact=true").json()["members"]
    assert dict(zip(current["document_ids"], zip(current["x"], current["y"], strict=True), strict=True)) == picture
    # The next run aligns to the first (the failed one left no layout behind).
    assert _run(client, cid)["layout_stability_reason"].endswith(f"run {first['run_id']} on 60 shared documents")


def test_filters_and_sample_size_checked_when_defined(
    client: TestClient, namespace: dict[str, Any], runtime: Runtime
) -> None:
    """Filters every run would apply, and a sample size above the algorithm's limit, are a 400 at
    create and at PATCH (they used to be stored and fail each execute); nothing is kept."""
    corpus = points_collection(client, runtime)
    bogus = {"AND": [{"field": "topic", "operator": "bogus", "value": 1}]}
    body = {
        "cluster_name": "checked",
        "collection_ids": ["points"],
        "vector_config": {"feature_uris": [corpus["feature_uri"]], "clustering_method": "spectral"},
    }
    assert (
        "bogus" in assert_error(client.post("/v1/clusters", json={**body, "filters": bogus}), 400)["error"]["message"]
    )
    assert client.get("/v1/clusters").json()["total_count"] == 0
    assert not [c for c in client.get("/v1/collections").json()["results"] if c["collection_name"] == "checked_output"]
    good = {"AND": [{"field": "topic", "operator": "eq", "value": "fruit"}]}
    cid = client.post("/v1/clusters", json={**body, "filters": good}).json()["cluster_id"]
    assert_error(client.patch(f"/v1/clusters/{cid}", json={"filters": bogus, "description": "x"}), 400)
    assert_error(client.patch(f"/v1/clusters/{cid}", json={"sample_size": 500_000}), 400)
    kept = client.get(f"/v1/clusters/{cid}").json()
    assert kept["filters"] == good and kept["description"] is None and kept["sample_size"] is None
