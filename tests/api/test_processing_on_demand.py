"""Collection trigger and the objects' auto_process flag create and submit batches for the user."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.collection_flows import add_object, make_bucket, text_collection
from tests.helpers import assert_error, wait_task

TEXT = "Alpha beta. Gamma delta."


def test_trigger_reprocesses_one_branch_of_the_dag(client: TestClient, namespace: dict[str, Any]) -> None:
    bucket_id = make_bucket(client)
    first = text_collection(
        client,
        "first",
        {"type": "bucket", "bucket_ids": [bucket_id]},
        split_by="sentences",
        chunk_size=1,
        model="wordllama",
    )
    other = text_collection(
        client,
        "other",
        {"type": "bucket", "bucket_ids": [bucket_id]},
        split_by="words",
        chunk_size=1,
        model="wordllama",
    )
    child = text_collection(
        client,
        "child",
        {"type": "collection", "collection_ids": [first["collection_id"]]},
        mapping="text",
        split_by="words",
        chunk_size=1,
        model="wordllama",
    )
    objects = [add_object(client, TEXT) for _ in range(2)]
    response = client.post(f"/v1/collections/{first['collection_id']}/trigger", json={})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["object_count"] == 2 and body["total_tiers"] == 2 and body["source_bucket_ids"] == [bucket_id]
    assert wait_task(client, body["task_id"], timeout=60)["status"] == "COMPLETED"
    batch = client.get(f"/v1/buckets/docs/batches/{body['batch_id']}").json()
    assert batch["dag_tiers"] == [[first["collection_id"]], [child["collection_id"]]]

    def count(c: dict[str, Any]) -> int:
        return len(
            client.post(f"/v1/collections/{c['collection_id']}/documents/list?limit=100", json={}).json()["results"]
        )

    assert (count(first), count(child), count(other)) == (4, 8, 0)

    from_child = client.post(f"/v1/collections/{child['collection_id']}/trigger", json={}).json()
    assert wait_task(client, from_child["task_id"], timeout=60)["status"] == "COMPLETED"
    child_batch = client.get(f"/v1/buckets/docs/batches/{from_child['batch_id']}").json()
    assert child_batch["tier_tasks"][0]["source_type"] == "collection" and count(child) == 8

    filtered = client.post(
        f"/v1/collections/{first['collection_id']}/trigger",
        json={"source_filters": {"filters": {"field": "metadata.title", "value": "none"}}},
    )
    assert_error(filtered, 400)
    # The SDK sends the filter tree bare (a LogicalOperator), not under "filters".
    bare = {"AND": [{"field": "metadata.title", "operator": "eq", "value": "none"}]}
    assert_error(client.post(f"/v1/collections/{first['collection_id']}/trigger", json={"source_filters": bare}), 400)
    one = client.post(f"/v1/collections/{first['collection_id']}/trigger", json={"object_ids": objects[:1]})
    assert one.status_code == 202 and one.json()["object_count"] == 1, one.text
    assert client.get(f"/v1/buckets/docs/batches/{one.json()['batch_id']}").json()["object_ids"] == objects[:1]
    assert wait_task(client, one.json()["task_id"], timeout=60)["status"] == "COMPLETED"
    stranger = client.post(
        f"/v1/collections/{first['collection_id']}/trigger", json={"object_ids": [objects[0], "obj_not_here"]}
    )
    assert assert_error(stranger, 400)["error"]["details"]["object_ids"] == ["obj_not_here"]
    too_many = [f"obj_{n}" for n in range(10_001)]
    assert_error(client.post(f"/v1/collections/{first['collection_id']}/trigger", json={"object_ids": too_many}), 422)
    assert_error(client.post("/v1/collections/col_unknown/trigger", json={}), 404)
    assert_error(
        client.post(f"/v1/collections/{first['collection_id']}/trigger", json={"include_buckets": ["bkt_other"]}), 400
    )


def test_trigger_dedup_skips_what_is_done_and_refuses_what_it_cannot_do(
    client: TestClient, namespace: dict[str, Any]
) -> None:
    bucket_id = make_bucket(client)
    first = text_collection(client, "first", {"type": "bucket", "bucket_ids": [bucket_id]}, model="wordllama")
    child = text_collection(
        client, "child", {"type": "collection", "collection_id": "first"}, mapping="text", model="wordllama"
    )
    url = f"/v1/collections/{first['collection_id']}/trigger"
    done = [add_object(client, TEXT) for _ in range(2)]
    ran = client.post(url, json={})
    assert wait_task(client, ran.json()["task_id"], timeout=60)["status"] == "COMPLETED"
    fresh = add_object(client, TEXT)

    skipping = client.post(url, json={"dedup_strategy": "skip"})
    assert skipping.status_code == 202, skipping.text
    body = skipping.json()
    assert body["object_count"] == 1 and "2 already processed" in body["message"]
    batch = client.get(f"/v1/buckets/docs/batches/{body['batch_id']}").json()
    assert batch["object_ids"] == [fresh] and batch["dedup_strategy"] == "skip"
    assert wait_task(client, body["task_id"], timeout=60)["status"] == "COMPLETED"
    # Now everything is done: skipping leaves nothing, which is a 400 naming why; force runs all.
    nothing = assert_error(client.post(url, json={"dedup_strategy": "skip"}), 400)
    assert "already has documents" in nothing["error"]["message"]
    forced = client.post(url, json={"dedup_strategy": "force"}).json()
    assert forced["object_count"] == 3 and sorted(done + [fresh]) == sorted(
        client.get(f"/v1/buckets/docs/batches/{forced['batch_id']}").json()["object_ids"]
    )
    assert wait_task(client, forced["task_id"], timeout=60)["status"] == "COMPLETED"

    # Asked for and not possible here: refused with a reason, never silently turned into a reprocess.
    batches = client.post("/v1/buckets/docs/batches/list", json={}).json()["results"]
    reembed = client.post(url, json={"reembed": {"outputs": ["transcription_embedding"]}})
    assert "reembed" in assert_error(reembed, 422)["error"]["message"]
    child_url = f"/v1/collections/{child['collection_id']}/trigger"
    assert_error(client.post(child_url, json={"include_collections": ["other"]}), 404)
    assert_error(client.post(url, json={"include_collections": ["first"]}), 400)  # a bucket-sourced collection
    named = client.post(child_url, json={"include_collections": ["first"]})  # every source named: accepted
    assert named.status_code == 202, named.text
    assert named.json()["source_collection_ids"] == [first["collection_id"]]
    assert len(client.post("/v1/buckets/docs/batches/list", json={}).json()["results"]) == len(batches) + 1


def test_auto_process_submits_new_objects(client: TestClient, namespace: dict[str, Any]) -> None:
    bucket_id = make_bucket(client)
    plain = client.post(
        "/v1/buckets/docs/objects?auto_process=true",
        json={"blobs": [{"property": "content", "type": "text", "data": TEXT}]},
    ).json()
    assert plain["processing"] == "no collection processes this bucket" and "task_id" not in plain
    chunks = text_collection(
        client,
        "chunks",
        {"type": "bucket", "bucket_ids": [bucket_id]},
        split_by="sentences",
        chunk_size=1,
        model="wordllama",
    )
    created = client.post(
        "/v1/buckets/docs/objects?auto_process=true",
        json={"blobs": [{"property": "content", "type": "text", "data": TEXT}]},
    ).json()
    assert created["object_id"].startswith("obj_") and created["batch_id"].startswith("btch_")
    assert wait_task(client, created["task_id"], timeout=60)["status"] == "COMPLETED"
    many = client.post(
        "/v1/buckets/docs/objects/batch?auto_process=true",
        json={"objects": [{"blobs": [{"property": "content", "type": "text", "data": TEXT}]} for _ in range(2)]},
    ).json()
    assert wait_task(client, many["task_id"], timeout=60)["status"] == "COMPLETED"
    batch = client.get(f"/v1/buckets/docs/batches/{many['batch_id']}").json()
    assert len(batch["object_ids"]) == 2
    documents = client.post(f"/v1/collections/{chunks['collection_id']}/documents/list?limit=100", json={}).json()
    assert len(documents["results"]) == 6
    submitted = client.post(
        "/v1/buckets/docs/batches?auto_submit=true", json={"object_ids": [plain["object_id"]]}
    ).json()
    assert submitted["status"] == "PENDING" and submitted["task_id"]
    # The same in the body (the SDK's CreateBatchRequest.auto_submit, or its older trigger_processing);
    # the query parameter wins when both are given.
    for body, query, status in (
        ({"auto_submit": True}, "", "PENDING"),
        ({"trigger_processing": True}, "", "PENDING"),
        ({"auto_submit": True}, "?auto_submit=false", "DRAFT"),
        ({}, "", "DRAFT"),
    ):
        made = client.post(f"/v1/buckets/docs/batches{query}", json={"object_ids": [plain["object_id"]], **body})
        assert made.json()["status"] == status, (body, query, made.text)


def test_source_filters_choose_the_rows_a_collection_sees(client: TestClient, namespace: dict[str, Any]) -> None:
    bucket_id = make_bucket(client)
    english = client.post(
        "/v1/collections",
        json={
            "collection_name": "english_only",
            "source": {
                "type": "bucket",
                "bucket_ids": [bucket_id],
                "source_filters": {"filters": {"field": "metadata.lang", "value": "en"}},
            },
            "feature_extractor": {
                "feature_extractor_name": "text_extractor",
                "version": "v1",
                "input_mappings": {"text": "content"},
                "parameters": {
                    "extractor_type": "text_extractor",
                    "split_by": "sentences",
                    "chunk_size": 1,
                    "model": "wordllama",
                },
            },
        },
    ).json()
    long_ones = client.post(
        "/v1/collections",
        json={
            "collection_name": "long_chunks",
            "source": {
                "type": "collection",
                "collection_ids": [english["collection_id"]],
                "source_filters": {"filters": {"field": "text", "operator": "contains", "value": "Gamma"}},
            },
            "feature_extractor": {
                "feature_extractor_name": "text_extractor",
                "version": "v1",
                "input_mappings": {"text": "text"},
                "parameters": {
                    "extractor_type": "text_extractor",
                    "split_by": "words",
                    "chunk_size": 1,
                    "model": "wordllama",
                },
            },
        },
    ).json()
    keep = [add_object(client, TEXT, lang="en") for _ in range(2)]
    skip = add_object(client, TEXT, lang="fr")
    batch = client.post("/v1/buckets/docs/batches", json={"object_ids": keep + [skip]}).json()
    task = client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/submit", json={}).json()
    assert wait_task(client, task["task_id"], timeout=60)["status"] == "COMPLETED"
    tiers = client.get(f"/v1/buckets/docs/batches/{batch['batch_id']}").json()["tier_tasks"]
    assert (tiers[0]["source_documents_fetched"], tiers[0]["documents_after_source_filter"]) == (3, 2)
    assert (tiers[1]["source_documents_fetched"], tiers[1]["documents_after_source_filter"]) == (4, 2)
    roots = {
        d["_internal"]["lineage"]["root_object_id"]
        for d in client.post(f"/v1/collections/{english['collection_id']}/documents/list?limit=100", json={}).json()[
            "results"
        ]
    }
    assert roots == set(keep)
    words = client.post(f"/v1/collections/{long_ones['collection_id']}/documents/list?limit=100", json={}).json()
    assert sorted(d["text"] for d in words["results"]) == ["Gamma", "Gamma", "delta.", "delta."]
