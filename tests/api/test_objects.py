"""Objects: blob sources, schema checks, failure leaves nothing, updates, deletes, duplicates."""

from __future__ import annotations

import base64
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from strataflow.config import Settings
from tests.helpers import assert_error

SCHEMA = {
    "properties": {
        "content": {"type": "text"},
        "picture": {"type": "image"},
        "title": {"type": "string"},
        "views": {"type": "integer"},
        "score": {"type": "float"},
        "published": {"type": "boolean"},
        "day": {"type": "date"},
        "kind": {"type": "string", "enum": ["news", "blog"]},
    }
}
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


@pytest.fixture
def bucket(client: TestClient, namespace: dict[str, Any]) -> str:
    response = client.post("/v1/buckets", json={"bucket_name": "docs", "bucket_schema": SCHEMA})
    assert response.status_code == 200, response.text
    return "docs"


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[str]:
    """A real HTTP server on loopback serving files, for blobs given by URL."""
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "pixel.png").write_bytes(PNG)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(tmp_path / "www"), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def settings(settings: Settings, file_server: str) -> Settings:
    """Loopback is refused to URL blobs unless the operator allows it: allow this file server alone."""
    return settings.model_copy(update={"outbound_allow": file_server.removeprefix("http://")})


def _blob_files(runtime: Any) -> list[Path]:
    return [p for p in Path(runtime.blobs.root).rglob("*") if p.is_file() and not p.name.endswith(".etag")]


def _create(client: TestClient, body: dict[str, Any], bucket: str = "docs") -> dict[str, Any]:
    response = client.post(f"/v1/buckets/{bucket}/objects", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_text_base64_data_uri_and_url_blobs(client: TestClient, bucket: str, file_server: str, runtime: Any) -> None:
    text = _create(client, {"blobs": [{"property": "content", "type": "text", "data": "héllo"}]})
    blob = text["blobs"][0]
    assert blob["type"] == "text" and blob["details"]["size_bytes"] == len("héllo".encode())
    assert blob["details"]["hash"] == hashlib.sha256("héllo".encode()).hexdigest()
    assert runtime.blobs.path(blob["properties"]["key"]).read_bytes() == "héllo".encode()
    assert text["source_details"] == [{"type": "bucket", "source_id": text["bucket_id"]}]

    b64 = _create(client, {"blobs": [{"property": "picture", "type": "IMAGE", "data": base64.b64encode(PNG).decode()}]})
    assert b64["blobs"][0]["type"] == "image" and b64["blobs"][0]["details"]["size_bytes"] == len(PNG)
    uri = _create(
        client,
        {
            "blobs": [
                {
                    "property": "picture",
                    "type": "image",
                    "data": "data:image/png;base64," + base64.b64encode(PNG).decode(),
                }
            ]
        },
    )
    assert uri["blobs"][0]["details"]["mime_type"] == "image/png"
    fetched = _create(client, {"blobs": [{"property": "picture", "type": "image", "data": f"{file_server}/pixel.png"}]})
    details = fetched["blobs"][0]["details"]
    assert details["filename"] == "pixel.png" and details["mime_type"] == "image/png"
    assert details["hash"] == hashlib.sha256(PNG).hexdigest()
    assert fetched["blobs"][0]["properties"]["source_url"].endswith("/pixel.png")


def test_presigned_download_urls_on_request(client: TestClient, bucket: str) -> None:
    obj = _create(client, {"blobs": [{"property": "content", "type": "text", "data": "x"}]})
    plain = client.get(f"/v1/buckets/docs/objects/{obj['object_id']}").json()
    assert "presigned_url" not in plain["blobs"][0]["properties"]
    signed = client.get(f"/v1/buckets/docs/objects/{obj['object_id']}?return_presigned_urls=true").json()
    url = signed["blobs"][0]["properties"]["presigned_url"]
    assert "/v1/blobs/" in url and "signature=" in url and "expires=" in url
    listed = client.post("/v1/buckets/docs/objects/list", json={}).json()["results"]
    assert "presigned_url" not in listed[0]["blobs"][0]["properties"]
    for answer in (
        client.post("/v1/buckets/docs/objects/list", json={"return_presigned_urls": True}),
        client.post("/v1/buckets/docs/objects/list?return_presigned_urls=true", json={}),
        client.get("/v1/buckets/docs/objects?return_presigned_urls=true"),
    ):
        signed_url = answer.json()["results"][0]["blobs"][0]["properties"]["presigned_url"]
        assert signed_url.split("?")[0] == url.split("?")[0] and "signature=" in signed_url


@pytest.mark.parametrize(
    ("blobs", "metadata", "fragment"),
    [
        ([{"property": "nope", "type": "text", "data": "x"}], {}, "not in the bucket schema"),
        ([{"property": "content", "type": "image", "data": "eA=="}], {}, "schema says text"),
        ([{"property": "picture", "type": "image", "data": "%%% not base64"}], {}, "base64"),
        ([{"property": "content", "type": "text", "data": "a"}], {"views": "many"}, "integer"),
        ([{"property": "content", "type": "text", "data": "a"}], {"kind": "poem"}, "one of"),
        ([{"property": "content", "type": "text", "data": "a"}], {"day": "not a date"}, "date"),
        (
            [
                {"property": "content", "type": "text", "data": "a"},
                {"property": "content", "type": "text", "data": "b"},
            ],
            {},
            "repeat",
        ),
        ([{"property": "content", "type": "text", "data": "http://127.0.0.1:9/nothing"}], {}, "could not fetch"),
    ],
)
def test_invalid_objects_are_refused_and_leave_nothing(
    client: TestClient, bucket: str, runtime: Any, blobs: list[Any], metadata: dict[str, Any], fragment: str
) -> None:
    body = assert_error(client.post("/v1/buckets/docs/objects", json={"blobs": blobs, "metadata": metadata}), 400)
    assert fragment in body["error"]["message"]
    assert client.get("/v1/buckets/docs").json()["object_count"] == 0
    assert _blob_files(runtime) == []


def test_shape_errors_are_422(client: TestClient, bucket: str) -> None:
    both = {"blobs": [{"property": "content", "type": "text", "data": "x", "upload_id": "upl_abc"}]}
    body = assert_error(client.post("/v1/buckets/docs/objects", json=both), 422, "ValidationError")
    assert body["error"]["details"]["validation_errors"][0]["location"].startswith("body.blobs.0")
    assert_error(client.post("/v1/buckets/docs/objects", json={"blobs": [{"property": "content"}]}), 422)
    assert_error(client.post("/v1/buckets/docs/objects", json={"blobs": "nope"}), 422)


def test_required_properties(client: TestClient, namespace: dict[str, Any]) -> None:
    schema = {"properties": {"content": {"type": "text"}, "title": {"type": "string", "required": True}}}
    client.post("/v1/buckets", json={"bucket_name": "strict", "bucket_schema": schema})
    blob = [{"property": "content", "type": "text", "data": "x"}]
    body = assert_error(client.post("/v1/buckets/strict/objects", json={"blobs": blob}), 400)
    assert body["error"]["details"]["missing_fields"] == ["title"]
    _create(client, {"blobs": blob, "metadata": {"title": "t"}}, bucket="strict")


def test_batch_create_reports_each_item(client: TestClient, bucket: str) -> None:
    items = [{"blobs": [{"property": "content", "type": "text", "data": f"n{i}"}]} for i in range(3)]
    items.insert(1, {"blobs": [{"property": "content", "type": "text"}]})
    items.append({"blobs": [{"property": "content", "type": "text", "data": "x"}], "metadata": {"views": "x"}})
    body = client.post("/v1/buckets/docs/objects/batch", json={"objects": items}).json()
    assert (body["succeeded_count"], body["failed_count"], body["total_requested"]) == (3, 2, 5)
    assert [f["object_index"] for f in body["failed"]] == [1, 4]
    assert body["failed"][0]["error_type"] == "ValidationError"
    assert body["failed"][1]["error_type"] == "BadRequestError"
    too_many = {"objects": items * 21}
    assert_error(client.post("/v1/buckets/docs/objects/batch", json=too_many), 422)
    assert client.get("/v1/buckets/docs").json()["object_count"] == 3


def test_filters_sort_search_select_and_cursor(client: TestClient, bucket: str) -> None:
    for i in range(6):
        _create(
            client,
            {
                "key_prefix": f"/set{i % 2}",
                "blobs": [{"property": "content", "type": "text", "data": f"body {i}"}],
                "metadata": {"title": f"Item {i}", "views": i, "score": i / 2, "published": i % 2 == 0},
            },
        )

    def ids(body: dict[str, Any]) -> list[int]:
        return [int(o["metadata"]["views"]) for o in body["results"]]

    def query(filters: Any, sort: Any = None) -> list[int]:
        response = client.post(
            "/v1/buckets/docs/objects/list",
            json={"filters": filters, "sort": sort or {"field": "metadata.views", "direction": "asc"}},
        )
        assert response.status_code == 200, response.text
        return ids(response.json())

    def cond(op: str, value: Any, field: str = "metadata.views") -> dict[str, Any]:
        return {"field": field, "operator": op, "value": value}

    assert query(cond("eq", 3)) == [3]
    assert query(cond("ne", 3)) == [0, 1, 2, 4, 5]
    assert query(cond("gt", 3)) == [4, 5]
    assert query(cond("lte", 1)) == [0, 1]
    assert query(cond("in", [1, 5])) == [1, 5]
    assert query(cond("nin", [1, 5])) == [0, 2, 3, 4]
    assert query(cond("eq", True, "metadata.published")) == [0, 2, 4]
    assert query(cond("gte", 2.0, "metadata.score")) == [4, 5]
    assert query(cond("contains", "TEM 4", "metadata.title")) == [4]
    assert query(cond("starts_with", "item", "metadata.title")) == list(range(6))
    assert query(cond("ends_with", "5", "metadata.title")) == [5]
    assert query(cond("regex", "^Item [12]$", "metadata.title")) == [1, 2]
    assert query(cond("exists", True, "metadata.score")) == list(range(6))
    assert query(cond("is_null", True, "metadata.missing")) == list(range(6))
    assert query(cond("eq", "/set1", "key_prefix")) == [1, 3, 5]
    assert query({"OR": [cond("eq", 0), {"AND": [cond("gt", 3), {"NOT": [cond("eq", 5)]}]}]}) == [0, 4]
    assert query({"metadata.title": "item 2"}) == [2]
    assert query(None, {"field": "metadata.views", "direction": "desc"}) == [5, 4, 3, 2, 1, 0]
    assert_error(client.post("/v1/buckets/docs/objects/list", json={"filters": cond("like", 1)}), 400)
    assert_error(client.post("/v1/buckets/docs/objects/list", json={"filters": cond("eq", 1, "password")}), 400)
    nested: dict[str, Any] = cond("eq", 1)
    for _ in range(20):
        nested = {"AND": [nested]}
    assert_error(client.post("/v1/buckets/docs/objects/list", json={"filters": nested}), 400)

    searched = client.post("/v1/buckets/docs/objects/list", json={"search": "ITEM 3"}).json()
    assert ids(searched) == [3]
    projected = client.post("/v1/buckets/docs/objects/list", json={"select": ["metadata"]}).json()
    assert set(projected["results"][0]) == {"object_id", "bucket_id", "metadata"}

    seen: list[str] = []
    url = "/v1/buckets/docs/objects/list?limit=4&include_total=true"
    page = client.post(url, json={}).json()
    assert page["pagination"]["total"] == 6
    seen += [o["object_id"] for o in page["results"]]
    page = client.post(
        f"/v1/buckets/docs/objects/list?limit=4&cursor={page['pagination']['next_cursor']}", json={}
    ).json()
    seen += [o["object_id"] for o in page["results"]]
    assert len(set(seen)) == 6 and page["pagination"]["next_cursor"] is None
    assert_error(client.post("/v1/buckets/docs/objects/list?cursor=garbage", json={}), 400)


def test_put_replaces_and_removes_old_bytes(client: TestClient, bucket: str, runtime: Any) -> None:
    obj = _create(
        client,
        {"blobs": [{"property": "content", "type": "text", "data": "v1"}], "metadata": {"title": "one", "views": 1}},
    )
    old_path = runtime.blobs.path(obj["blobs"][0]["properties"]["key"])
    put = client.put(
        f"/v1/buckets/docs/objects/{obj['object_id']}",
        json={"blobs": [{"property": "content", "type": "text", "data": "version two"}], "metadata": {"title": "two"}},
    )
    assert put.status_code == 200, put.text
    body = put.json()
    assert body["metadata"] == {"title": "two"} and body["blobs"][0]["details"]["size_bytes"] == 11
    assert not old_path.exists()
    assert runtime.blobs.path(body["blobs"][0]["properties"]["key"]).read_text() == "version two"
    bad = client.put(f"/v1/buckets/docs/objects/{obj['object_id']}", json={"metadata": {"views": "x"}})
    assert_error(bad, 400)
    assert client.get(f"/v1/buckets/docs/objects/{obj['object_id']}").json()["metadata"] == {"title": "two"}


def test_patch_merges_metadata(client: TestClient, bucket: str) -> None:
    obj = _create(
        client,
        {"blobs": [{"property": "content", "type": "text", "data": "x"}], "metadata": {"title": "one", "views": 1}},
    )
    patched = client.patch(f"/v1/buckets/docs/objects/{obj['object_id']}", json={"metadata": {"views": 2}}).json()
    assert patched["metadata"] == {"title": "one", "views": 2} and patched["blobs"] == obj["blobs"]
    assert_error(client.patch(f"/v1/buckets/docs/objects/{obj['object_id']}", json={"metadata": {"views": 1.5}}), 400)


def test_delete_returns_204_and_removes_bytes(client: TestClient, bucket: str, runtime: Any) -> None:
    obj = _create(client, {"blobs": [{"property": "content", "type": "text", "data": "x"}]})
    path = runtime.blobs.path(obj["blobs"][0]["properties"]["key"])
    response = client.delete(f"/v1/buckets/docs/objects/{obj['object_id']}")
    assert response.status_code == 204 and response.content == b""
    assert not path.exists()
    assert_error(client.delete(f"/v1/buckets/docs/objects/{obj['object_id']}"), 404)


def test_skip_duplicates_returns_the_existing_object(client: TestClient, bucket: str) -> None:
    body = {"blobs": [{"property": "content", "type": "text", "data": "same"}]}
    first = _create(client, body)
    again = _create(client, {**body, "skip_duplicates": True})
    assert again["object_id"] == first["object_id"]
    third = _create(client, body)
    assert third["object_id"] != first["object_id"]
    assert client.get("/v1/buckets/docs").json()["object_count"] == 2


def test_unique_key_policies(client: TestClient, namespace: dict[str, Any]) -> None:
    schema = {"properties": {"content": {"type": "text"}, "sku": {"type": "string"}}}
    client.post(
        "/v1/buckets", json={"bucket_name": "products", "bucket_schema": schema, "unique_key": {"fields": ["sku"]}}
    )
    body = {"blobs": [{"property": "content", "type": "text", "data": "v1"}], "metadata": {"sku": "A1"}}
    first = _create(client, body, "products")
    assert_error(client.post("/v1/buckets/products/objects", json=body), 409, "AlreadyExistsError")
    update = {**body, "blobs": [{"property": "content", "type": "text", "data": "v2"}]}
    updated = client.post("/v1/buckets/products/objects?policy=update", json=update).json()
    assert updated["object_id"] == first["object_id"] and updated["blobs"][0]["details"]["size_bytes"] == 2
    missing = {**body, "metadata": {"sku": "B2"}}
    assert_error(client.post("/v1/buckets/products/objects?policy=update", json=missing), 404)
    created = client.post("/v1/buckets/products/objects?policy=upsert", json=missing).json()
    assert created["object_id"] != first["object_id"]
    assert_error(client.post("/v1/buckets/products/objects", json={"blobs": body["blobs"]}), 400)
    assert client.get("/v1/buckets/products").json()["object_count"] == 2


def test_aggregate(client: TestClient, bucket: str) -> None:
    for i in range(5):
        _create(
            client,
            {
                "blobs": [{"property": "content", "type": "text", "data": "x" * (i + 1)}],
                "metadata": {"kind": "news" if i < 3 else "blog", "views": i},
            },
        )
    body = client.post(
        "/v1/buckets/docs/objects/aggregate",
        json={
            "group_by": [{"field": "metadata.kind", "alias": "kind"}],
            "aggregations": [
                {"function": "count", "alias": "n"},
                {"function": "sum", "field": "metadata.views", "alias": "views"},
                {"function": "max", "field": "size_bytes", "alias": "largest"},
            ],
            "sort_by": "n",
        },
    ).json()
    assert body["total_groups"] == 2
    rows = {r["group"]["kind"]: r["metrics"] for r in body["results"]}
    assert rows["news"]["n"] == 3 and rows["news"]["views"] == 3 and rows["news"]["largest"] == 3
    assert rows["blog"]["n"] == 2 and rows["blog"]["views"] == 7
    assert body["results"][0]["group"]["kind"] == "news"
    bad = {"group_by": [{"field": "metadata.kind"}], "aggregations": [{"function": "median", "field": "x"}]}
    assert_error(client.post("/v1/buckets/docs/objects/aggregate", json=bad), 400)


def test_aggregate_unwinds_buckets_and_keeps_groups_by_having(client: TestClient, bucket: str) -> None:
    tagged = [(["a", "b"], 5), (["a"], 50), (["b", "c"], 500), ([], 7)]
    for tags, views in tagged:
        _create(
            client,
            {
                "blobs": [{"property": "content", "type": "text", "data": "x"}],
                "metadata": {"tags": tags, "views": views},
            },
        )
    url = "/v1/buckets/docs/objects/aggregate"
    per_tag = client.post(
        url,
        json={
            "unwind": "metadata.tags",
            "group_by": [{"field": "metadata.tags", "alias": "tag"}],
            "aggregations": [
                {"function": "count", "alias": "n"},
                {"function": "sum", "field": "metadata.views", "alias": "v"},
            ],
            "having": [{"field": "n", "operator": "eq", "value": 2}],
        },
    )
    assert per_tag.status_code == 200, per_tag.text
    assert sorted((r["group"]["tag"], r["metrics"]["v"]) for r in per_tag.json()["results"]) == [
        ("a", 55.0),
        ("b", 505.0),
    ]
    ranges = client.post(
        url,
        json={
            "group_by": [{"field": "created_at", "date_trunc": "year", "alias": "year"}],
            "range_buckets": [{"field": "metadata.views", "boundaries": [10, 100]}],
            "aggregations": [
                {"function": "count", "alias": "n"},
                {"function": "min", "field": "created_at", "alias": "first"},
            ],
        },
    ).json()["results"]
    assert sorted((r["group"]["metadata.views"], r["metrics"]["n"]) for r in ranges) == [
        ("10-100", 1),
        ("<10", 2),
        (">100", 1),
    ]
    assert all(r["group"]["year"].endswith("-01-01T00:00:00+00:00") and r["metrics"]["first"] for r in ranges)
    unwind_column = {
        "group_by": [{"field": "status"}],
        "aggregations": [{"function": "count", "alias": "n"}],
        "unwind": "status",
    }
    assert_error(client.post(url, json=unwind_column), 400)
