"""Namespaces: create, read by id or name, list, update, delete asynchronously."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.helpers import assert_error, wait_task


def _create(client: TestClient, name: str, **extra: object) -> dict:
    response = client.post("/v1/namespaces", json={"namespace_name": name, **extra})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_create_then_get_by_id_and_name(client: TestClient) -> None:
    created = _create(
        client,
        "media",
        description="videos",
        feature_extractors=[
            {"feature_extractor_name": "text_extractor", "version": "v1"},
            {"feature_extractor_name": "text_extractor", "version": "v1"},
        ],
    )
    assert created["namespace_id"].startswith("ns_")
    assert created["feature_extractors"] == [
        {
            "feature_extractor_name": "text_extractor",
            "version": "v1",
            "feature_extractor_id": "text_extractor_v1",
            "params": None,
        }
    ]
    assert created["bucket_count"] == 0 and created["object_count"] == 0
    by_id = client.get(f"/v1/namespaces/{created['namespace_id']}").json()
    by_name = client.get("/v1/namespaces/media").json()
    assert by_id == by_name
    assert by_id["description"] == "videos"


def test_duplicate_and_invalid_names_are_refused(client: TestClient) -> None:
    _create(client, "media")
    assert_error(client.post("/v1/namespaces", json={"namespace_name": "media"}), 409, "AlreadyExistsError")
    assert_error(client.post("/v1/namespaces", json={"namespace_name": "bad name!"}), 422, "ValidationError")
    assert_error(client.post("/v1/namespaces", json={"namespace_name": "ns_looks_like_id"}), 400)
    assert_error(client.post("/v1/namespaces", json={"namespace_name": "x" * 65}), 422)
    assert_error(client.post("/v1/namespaces", json={}), 422)
    listed = client.post("/v1/namespaces/list", json={}).json()
    assert listed["total_count"] == 1


def test_list_search_sort_and_paginate(client: TestClient) -> None:
    # Search also matches ids, whose random tokens are lower-case letters and digits: a term with
    # a hyphen can only match the names (a bare "ta" failed whenever an id happened to hold it).
    for name in ("al-pha", "be-ta", "gam-ma", "del-ta"):
        _create(client, name)
    body = client.post("/v1/namespaces/list", json={"search": "-ta"}).json()
    assert sorted(n["namespace_name"] for n in body["results"]) == ["be-ta", "del-ta"]
    assert body["total_count"] == 2
    ordered = client.post("/v1/namespaces/list", json={"sort": {"field": "namespace_name", "direction": "asc"}})
    assert [n["namespace_name"] for n in ordered.json()["results"]] == ["al-pha", "be-ta", "del-ta", "gam-ma"]
    first = client.post("/v1/namespaces/list?limit=3&include_total=true", json={}).json()
    assert len(first["results"]) == 3 and first["pagination"]["total"] == 4
    second = client.post(f"/v1/namespaces/list?limit=3&cursor={first['pagination']['next_cursor']}", json={}).json()
    assert len(second["results"]) == 1 and second["pagination"]["next_cursor"] is None
    seen = {n["namespace_id"] for n in first["results"] + second["results"]}
    assert len(seen) == 4
    assert client.get("/v1/namespaces").json()["total_count"] == 4
    # The SDK's other spellings of the same paging: page_size and page (from 1), next_cursor and after.
    by_name = {"sort": {"field": "namespace_name", "direction": "asc"}}
    page_two = client.post("/v1/namespaces/list?page_size=2&page=2", json=by_name).json()
    assert [n["namespace_name"] for n in page_two["results"]] == ["del-ta", "gam-ma"]
    for spelling in ("next_cursor", "after"):
        rest = client.post(f"/v1/namespaces/list?limit=3&{spelling}={first['pagination']['next_cursor']}", json={})
        assert [n["namespace_id"] for n in rest.json()["results"]] == [n["namespace_id"] for n in second["results"]]
    assert client.post("/v1/namespaces/list?page_size=1000&page=12", json={}).status_code in (400, 422)
    # In the body, as the SDK's ListNamespacesRequest carries it, paging wins over the query string.
    in_body = client.post("/v1/namespaces/list?limit=1&offset=0", json={**by_name, "page_size": 2, "page": 2}).json()
    assert [n["namespace_name"] for n in in_body["results"]] == ["del-ta", "gam-ma"]
    offset_body = client.post("/v1/namespaces/list?limit=3", json={**by_name, "limit": 1, "offset": 1}).json()
    assert [n["namespace_name"] for n in offset_body["results"]] == ["be-ta"]
    filtered = client.post(
        "/v1/namespaces/list",
        json={"filters": {"field": "namespace_name", "operator": "in", "value": ["al-pha", "GAM-MA"]}},
    ).json()
    assert sorted(n["namespace_name"] for n in filtered["results"]) == ["al-pha", "gam-ma"]


def test_list_sorts(client: TestClient) -> None:
    for name, description in [("al-pha", "b"), ("be-ta", "a"), ("gam-ma", "b"), ("del-ta", "a")]:
        _create(client, name, description=description)
    sorts = [{"field": "description", "direction": "asc"}, {"field": "namespace_name", "direction": "desc"}]
    body = client.post("/v1/namespaces/list", json={"sorts": sorts}).json()
    assert [n["namespace_name"] for n in body["results"]] == ["del-ta", "be-ta", "gam-ma", "al-pha"]
    # `sorts` is primary; the legacy `sort` breaks its ties only
    both = {"sorts": sorts[:1], "sort": {"field": "namespace_name", "direction": "asc"}, "page_size": 3}
    assert [n["namespace_name"] for n in client.post("/v1/namespaces/list", json=both).json()["results"]] == [
        "be-ta",
        "del-ta",
        "al-pha",
    ]
    bad = assert_error(client.post("/v1/namespaces/list", json={"sorts": [{"field": "secret"}]}), 400)
    assert "secret" in bad["error"]["message"]
    assert_error(client.post("/v1/namespaces/list", json={"sorts": [{"direction": "asc"}]}), 400)


def test_patch_and_put_rename_with_conflict_check(client: TestClient) -> None:
    media = _create(client, "media")
    _create(client, "other")
    patched = client.patch("/v1/namespaces/media", json={"description": "all media"}).json()
    assert patched["description"] == "all media" and patched["namespace_name"] == "media"
    assert_error(client.put("/v1/namespaces/media", json={"namespace_name": "other"}), 409)
    renamed = client.put(f"/v1/namespaces/{media['namespace_id']}", json={"namespace_name": "video"}).json()
    assert renamed["namespace_name"] == "video"
    assert client.get("/v1/namespaces/video").status_code == 200
    assert_error(client.get("/v1/namespaces/media"), 404, "NotFoundError")


def test_delete_is_asynchronous_and_removes_contents(client: TestClient, runtime: object) -> None:
    _create(client, "doomed")
    client.headers["X-Namespace"] = "doomed"
    schema = {"properties": {"content": {"type": "text"}}}
    assert client.post("/v1/buckets", json={"bucket_name": "b", "bucket_schema": schema}).status_code == 200
    created = client.post(
        "/v1/buckets/b/objects", json={"blobs": [{"property": "content", "type": "text", "data": "bytes on disk"}]}
    ).json()
    blob_path = runtime.blobs.path(created["blobs"][0]["properties"]["key"])  # type: ignore[attr-defined]
    assert blob_path.is_file()
    del client.headers["X-Namespace"]
    answer = client.delete("/v1/namespaces/doomed")
    assert answer.status_code == 200 and answer.json()["status"] == "PENDING"
    assert_error(client.get("/v1/namespaces/doomed"), 404)  # hidden at once
    task = wait_task(client, answer.json()["task_id"])
    assert task["status"] == "COMPLETED" and task["task_type"] == "api_namespaces_delete"
    assert task["outputs"][0]["objects_deleted"] == 1
    assert not blob_path.exists()
    assert_error(client.delete("/v1/namespaces/doomed"), 404)
    assert _create(client, "doomed")["bucket_count"] == 0  # the name is free again


def test_search_matches_wildcard_characters_literally(client: TestClient) -> None:
    for name in ("a_b", "axb", "beta"):
        _create(client, name)
    body = client.post("/v1/namespaces/list", json={"search": "a_b"}).json()
    assert [n["namespace_name"] for n in body["results"]] == ["a_b"]  # '_' is no single-character wildcard
    assert client.post("/v1/namespaces/list", json={"search": "%"}).json()["total_count"] == 0
