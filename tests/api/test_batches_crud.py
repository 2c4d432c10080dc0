"""Batches before submission: create, add objects (validated in bulk), list, patch, delete."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import assert_error


@pytest.fixture
def objects(client: TestClient, namespace: dict[str, Any]) -> list[str]:
    client.post("/v1/buckets", json={"bucket_name": "docs", "bucket_schema": {"properties": {"t": {"type": "text"}}}})
    items = [{"blobs": [{"property": "t", "type": "text", "data": f"text {i}"}]} for i in range(5)]
    body = client.post("/v1/buckets/docs/objects/batch", json={"objects": items}).json()
    return [o["object_id"] for o in body["succeeded"]]


def test_create_is_a_draft_with_its_objects(client: TestClient, objects: list[str]) -> None:
    response = client.post("/v1/buckets/docs/batches", json={"object_ids": objects[:2], "metadata": {"run": 1}})
    assert response.status_code == 200, response.text
    batch = response.json()
    assert batch["batch_id"].startswith("btch_") and batch["status"] == "DRAFT"
    assert batch["object_ids"] == objects[:2] and batch["tier_tasks"] == [] and batch["total_tiers"] == 1
    assert batch["current_tier"] is None and batch["metadata"] == {"run": 1}
    assert (batch["max_node_death_resubmits"], batch["max_deploy_resubmits"]) == (3, 3)
    grown = client.post(
        f"/v1/buckets/docs/batches/{batch['batch_id']}/objects",
        json={"object_ids": [objects[1], objects[2], objects[2], objects[3]]},
    ).json()
    assert grown["object_ids"] == objects[:4]  # de-duplicated, order kept
    assert client.get(f"/v1/buckets/docs/batches/{batch['batch_id']}").json()["object_ids"] == objects[:4]


def test_unknown_or_foreign_ids_are_listed_and_nothing_changes(client: TestClient, objects: list[str]) -> None:
    client.post("/v1/buckets", json={"bucket_name": "other", "bucket_schema": {"properties": {"t": {"type": "text"}}}})
    foreign = client.post(
        "/v1/buckets/other/objects", json={"blobs": [{"property": "t", "type": "text", "data": "x"}]}
    ).json()["object_id"]
    body = assert_error(
        client.post("/v1/buckets/docs/batches", json={"object_ids": [objects[0], "obj_missing", foreign]}), 400
    )
    assert sorted(body["error"]["details"]["invalid_object_ids"]) == sorted(["obj_missing", foreign])
    assert client.post("/v1/buckets/docs/batches/list", json={}).json()["total_count"] == 0
    batch = client.post("/v1/buckets/docs/batches", json={"object_ids": objects[:1]}).json()
    assert_error(
        client.post(f"/v1/buckets/docs/batches/{batch['batch_id']}/objects", json={"object_ids": ["obj_nope"]}), 400
    )
    assert client.get(f"/v1/buckets/docs/batches/{batch['batch_id']}").json()["object_ids"] == objects[:1]
    assert_error(client.post("/v1/buckets/docs/batches", json={"object_ids": []}), 422)
    skipped = client.post("/v1/buckets/docs/batches?skip_validation=true", json={"object_ids": ["obj_future"]})
    assert skipped.status_code == 200 and skipped.json()["object_ids"] == ["obj_future"]
    assert_error(client.post("/v1/buckets/docs/batches?skip_validation=true", json={"object_ids": ["x"]}), 400)


def test_hundred_thousand_ids_in_one_request(client: TestClient, objects: list[str]) -> None:
    ids = [f"obj_bulk{i:08d}" for i in range(100_000)]
    started = time.perf_counter()
    body = assert_error(client.post("/v1/buckets/docs/batches", json={"object_ids": ids}), 400)
    elapsed = time.perf_counter() - started
    assert body["error"]["details"]["invalid_count"] == 100_000
    assert len(body["error"]["details"]["invalid_object_ids"]) == 50
    print(f"validated 100k ids in {elapsed:.2f}s")  # the figure lives in bench/batches.py, not an assertion
    skipped = client.post("/v1/buckets/docs/batches?skip_validation=true", json={"object_ids": ids + ids[:10]})
    assert skipped.status_code == 200
    assert skipped.json()["internal_metadata"]["object_count"] == 100_000


def test_list_patch_and_delete(client: TestClient, objects: list[str]) -> None:
    ids = [client.post("/v1/buckets/docs/batches", json={"object_ids": [o]}).json()["batch_id"] for o in objects[:3]]
    listed = client.post("/v1/buckets/docs/batches/list", json={"limit": 2}).json()
    assert listed["total_count"] == 3 and len(listed["results"]) == 2
    assert client.post("/v1/buckets/docs/batches/list", json={"status": "COMPLETED"}).json()["total_count"] == 0
    patched = client.patch(f"/v1/buckets/docs/batches/{ids[0]}", json={"metadata": {"k": "v"}}).json()
    assert patched["metadata"] == {"k": "v"}
    deleted = client.delete(f"/v1/buckets/docs/batches/{ids[0]}")
    assert deleted.status_code == 200 and deleted.json()["success"] is True
    assert_error(client.get(f"/v1/buckets/docs/batches/{ids[0]}"), 404)
    assert_error(client.get("/v1/buckets/docs/batches/btch_unknown"), 404)
