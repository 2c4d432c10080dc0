"""Buckets: schema validation, names, listing, updates and asynchronous delete."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.helpers import assert_error, wait_task

SCHEMA = {
    "properties": {
        "video": {"type": "VIDEO"},
        "title": {"type": "string", "required": True},
        "tags": {"type": "array", "items": {"type": "string"}},
    }
}


def _bucket(client: TestClient, name: str = "clips", schema: dict[str, Any] = SCHEMA, **extra: Any) -> dict[str, Any]:
    response = client.post("/v1/buckets", json={"bucket_name": name, "bucket_schema": schema, **extra})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_create_normalises_types_and_reads_back(client: TestClient, namespace: dict[str, Any]) -> None:
    created = _bucket(client, metadata={"team": "a"}, description="raw clips")
    assert created["bucket_id"].startswith("bkt_")
    assert created["bucket_schema"]["properties"]["video"]["type"] == "video"
    assert created["bucket_schema"]["properties"]["tags"]["items"]["type"] == "string"
    assert created["status"] == "ACTIVE" and created["object_count"] == 0 and created["total_size_bytes"] == 0
    assert client.get(f"/v1/buckets/{created['bucket_id']}").json() == client.get("/v1/buckets/clips").json()


def test_bad_schemas_and_names_are_refused(client: TestClient, namespace: dict[str, Any]) -> None:
    assert_error(client.post("/v1/buckets", json={"bucket_name": "x", "bucket_schema": {}}), 400)
    bad_type = {"properties": {"a": {"type": "hologram"}}}
    body = assert_error(client.post("/v1/buckets", json={"bucket_name": "x", "bucket_schema": bad_type}), 400)
    assert "hologram" in body["error"]["message"]
    bad_name = {"properties": {"a b": {"type": "string"}}}
    assert_error(client.post("/v1/buckets", json={"bucket_name": "x", "bucket_schema": bad_name}), 400)
    unique = {"fields": ["missing"]}
    assert_error(
        client.post("/v1/buckets", json={"bucket_name": "x", "bucket_schema": SCHEMA, "unique_key": unique}), 400
    )
    assert_error(client.post("/v1/buckets", json={"bucket_name": "x"}), 422, "ValidationError")
    _bucket(client)
    assert_error(client.post("/v1/buckets", json={"bucket_name": "clips", "bucket_schema": SCHEMA}), 409)
    assert client.post("/v1/buckets/list", json={}).json()["total_count"] == 1


def test_same_name_in_two_namespaces(client: TestClient, namespace: dict[str, Any]) -> None:
    first = _bucket(client)
    client.post("/v1/namespaces", json={"namespace_name": "second"})
    client.headers["X-Namespace"] = "second"
    second = _bucket(client)
    assert first["bucket_id"] != second["bucket_id"]
    assert client.get(f"/v1/buckets/{first['bucket_id']}").status_code == 404


def test_list_paginates_in_body_and_filters(client: TestClient, namespace: dict[str, Any]) -> None:
    for i in range(5):
        _bucket(client, f"b{i}", metadata={"rank": i})
    page = client.post("/v1/buckets/list", json={"limit": 2, "offset": 2}).json()
    assert len(page["results"]) == 2 and page["total_count"] == 5 and page["pagination"]["page"] == 2
    ranked = client.post(
        "/v1/buckets/list",
        json={
            "filters": {"AND": [{"field": "metadata.rank", "operator": "gt", "value": 2}]},
            "sort": {"field": "bucket_name", "direction": "desc"},
        },
    ).json()
    assert [b["bucket_name"] for b in ranked["results"]] == ["b4", "b3"]
    assert_error(client.post("/v1/buckets/list", json={"filters": {"field": "secret", "value": 1}}), 400)
    assert_error(client.post("/v1/buckets/list", json={"limit": 0}), 422)


def test_list_sorts_and_body_pages(client: TestClient, namespace: dict[str, Any]) -> None:
    for name, rank in [("b0", 2), ("b1", 1), ("b2", 2), ("b3", 1)]:
        _bucket(client, name, metadata={"rank": rank})
    sorts = [{"field": "metadata.rank", "direction": "asc"}, {"field": "bucket_name", "direction": "desc"}]
    ordered = client.post("/v1/buckets/list", json={"sorts": sorts}).json()
    assert [b["bucket_name"] for b in ordered["results"]] == ["b3", "b1", "b2", "b0"]
    # `sorts` is primary, the legacy `sort` only breaks its ties
    both = {"sorts": sorts[:1], "sort": {"field": "bucket_name", "direction": "asc"}}
    assert [b["bucket_name"] for b in client.post("/v1/buckets/list", json=both).json()["results"]] == [
        "b1",
        "b3",
        "b0",
        "b2",
    ]
    page = client.post("/v1/buckets/list", json={"sorts": sorts, "page": 2, "page_size": 3}).json()
    assert [b["bucket_name"] for b in page["results"]] == ["b0"]
    assert page["pagination"]["page"] == 2 and page["pagination"]["page_size"] == 3
    assert page["pagination"]["total_pages"] == 2 and page["total_count"] == 4
    body = assert_error(client.post("/v1/buckets/list", json={"sorts": [{"field": "secret"}]}), 400)
    assert "secret" in body["error"]["message"]


def test_put_and_patch(client: TestClient, namespace: dict[str, Any]) -> None:
    bucket = _bucket(client, description="old", metadata={"a": 1})
    patched = client.patch("/v1/buckets/clips", json={"metadata": {"b": 2}}).json()
    assert patched["metadata"] == {"b": 2} and patched["description"] == "old"
    put = client.put(f"/v1/buckets/{bucket['bucket_id']}", json={"bucket_name": "renamed"}).json()
    assert put["bucket_name"] == "renamed" and put["description"] is None
    assert put["bucket_schema"] == bucket["bucket_schema"]  # the schema is not editable here
    _bucket(client, "clips")
    assert_error(client.patch("/v1/buckets/renamed", json={"bucket_name": "clips"}), 409)


def test_stats_count_objects_and_bytes(client: TestClient, namespace: dict[str, Any]) -> None:
    _bucket(client, "notes", {"properties": {"body": {"type": "text"}}})
    for text in ("abc", "defgh"):
        client.post("/v1/buckets/notes/objects", json={"blobs": [{"property": "body", "type": "text", "data": text}]})
    bucket = client.get("/v1/buckets/notes").json()
    assert (bucket["object_count"], bucket["total_size_bytes"]) == (2, 8)
    assert bucket["storage_stats"] == {
        "total_size_bytes": 8,
        "avg_size_bytes": 4,
        "max_size_bytes": 5,
        "min_size_bytes": 3,
    }
    assert bucket["last_upload_at"] is not None


def test_delete_removes_objects_and_bytes(client: TestClient, namespace: dict[str, Any], runtime: Any) -> None:
    _bucket(client, "notes", {"properties": {"body": {"type": "text"}}})
    obj = client.post(
        "/v1/buckets/notes/objects", json={"blobs": [{"property": "body", "type": "text", "data": "x"}]}
    ).json()
    path = runtime.blobs.path(obj["blobs"][0]["properties"]["key"])
    task = wait_task(client, client.delete("/v1/buckets/notes").json()["task_id"])
    assert task["status"] == "COMPLETED" and task["outputs"][0]["objects_deleted"] == 1
    assert not path.exists()
    assert_error(client.get("/v1/buckets/notes"), 404)
    assert_error(client.get(f"/v1/buckets/notes/objects/{obj['object_id']}"), 404)
