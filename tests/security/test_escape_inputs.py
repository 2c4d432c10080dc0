"""Inputs that try to escape: traversal in keys and part numbers, huge bodies, text no database stores.

Each gets a clear error in the ErrorResponse envelope and changes nothing (no row,
no byte). Filenames at upload create are covered in tests/api/uploads/
test_upload_validation.py; filter abuse in test_filter_abuse.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from strataflow.blobs.local import LocalBlobStore
from strataflow.config import Settings
from strataflow.runtime import Runtime
from tests.helpers import assert_error

JSON = {"Content-Type": "application/json"}
OBJECTS = "/v1/buckets/docs/objects"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_json_body_bytes": 64 * 1024})  # a small limit keeps the test quick


@pytest.fixture
def docs(client: TestClient, namespace: dict[str, Any]) -> None:
    schema = {"properties": {"c": {"type": "text"}, "title": {"type": "string"}}}
    assert client.post("/v1/buckets", json={"bucket_name": "docs", "bucket_schema": schema}).status_code == 200


def _count(client: TestClient) -> tuple[int, int]:
    objects = client.post(f"{OBJECTS}/list", json={}).json()["results"]
    uploads = client.post("/v1/buckets/docs/uploads/list", json={}).json()["results"]
    return len(objects), len(uploads)


def _files(runtime: Runtime) -> list[Path]:
    root = runtime.settings.data_dir
    return sorted(p for p in root.rglob("*") if p.is_file() and "blobs" in p.parts)


@pytest.mark.parametrize(
    "raw",
    [
        rb'{"metadata": {"title": "\ud800"}, "blobs": [{"property": "c", "type": "text", "data": "x"}]}',
        rb'{"metadata": {"title": "a\u0000b"}, "blobs": [{"property": "c", "type": "text", "data": "x"}]}',
        rb'{"metadata": {"ti\u0000tle": "x"}, "blobs": [{"property": "c", "type": "text", "data": "x"}]}',
        rb'{"blobs": [{"property": "c", "type": "text", "data": "x\udfffy"}]}',
        b'{"metadata": {"title": "\xc3\x28"}, "blobs": [{"property": "c", "type": "text", "data": "x"}]}',
        b'{"blobs": [{"property": "c", "type": "text", "data": "\xff\xfe\x00"}]}',
    ],
)
def test_text_no_database_can_store_is_refused(client: TestClient, docs: None, raw: bytes) -> None:
    # Escaped NUL and lone surrogates were 500s (PostgreSQL everywhere, SQLite in JSON paths);
    # raw invalid UTF-8 is invalid JSON. Same 400 on both databases, nothing created.
    assert_error(client.post(OBJECTS, content=raw, headers=JSON), 400, "BadRequestError")
    upload = raw.replace(
        b'"blobs"', b'"filename": "a.txt", "content_type": "text/plain", "blob_property": "c", "ignored"'
    ).replace(b'"metadata"', b'"object_metadata"')
    assert client.post("/v1/buckets/docs/uploads", content=upload, headers=JSON).status_code in (400, 422)
    for query in (rb'{"filters": {"metadata.title": "\u0000"}}', rb'{"search": "\ud800"}'):
        assert_error(client.post(f"{OBJECTS}/list", content=query, headers=JSON), 400, "BadRequestError")
    assert _count(client) == (0, 0)


def test_valid_unicode_including_escaped_pairs_is_kept(client: TestClient, docs: None) -> None:
    raw = (
        rb'{"metadata": {"title": "\ud83d\ude00 caf\u00e9 \\u0000"}, "blobs": [{"property": "c", "type": "text", '
        rb'"data": "x"}]}'
    )
    created = client.post(OBJECTS, content=raw, headers=JSON)
    assert created.status_code == 200, created.text
    assert created.json()["metadata"]["title"] == "\U0001f600 café \\u0000"  # an escaped backslash is no NUL


def test_nul_in_the_url_is_refused(client: TestClient, docs: None) -> None:
    assert_error(client.get("/v1/buckets/do%00cs"), 400, "BadRequestError")
    assert_error(client.get("/v1/buckets", params={"search": "a\x00"}), 400, "BadRequestError")


@pytest.mark.parametrize(
    "key",
    [
        "../outside.txt",
        "a/../../outside.txt",
        "/etc/passwd",
        "a\\..\\..\\x.txt",
        "a\x00b.txt",
        "%2e%2e/outside.txt",
        "./a.txt",
        "a//b.txt",
    ],
)
def test_signed_blob_keys_cannot_escape(client: TestClient, runtime: Runtime, key: str) -> None:
    # Even a valid signature over the evil key (as if the secret leaked) cannot name a path outside.
    store = runtime.blobs
    assert isinstance(store, LocalBlobStore)
    from urllib.parse import quote

    signature = store.sign("PUT", key, "text/plain", 2_000_000_000)
    url = f"/v1/blobs/{quote(key, safe='/%')}?expires=2000000000&signature={signature}"
    response = client.put(url, content=b"x", headers={"Content-Type": "text/plain"})
    assert response.status_code in (400, 403, 404), response.text
    assert response.json()["success"] is False
    assert _files(runtime) == []
    assert not (store.root.parent / "outside.txt").exists()


def test_multipart_part_numbers_cannot_escape(client: TestClient, docs: None, runtime: Runtime) -> None:
    upload = client.post(
        "/v1/buckets/docs/uploads",
        json={
            "filename": "big.txt",
            "content_type": "text/plain",
            "blob_property": "c",
            "file_size_bytes": 6 * 1024 * 1024,
        },
    ).json()
    base = f"/v1/buckets/docs/uploads/{upload['upload_id']}"
    assert client.post(f"{base}/multipart", json={"part_size_bytes": 5 * 1024 * 1024}).status_code == 200
    for number in ("../../etc/passwd", "1/../../x", -1, 0, 10_001, 2**63, 1.5, None):
        response = client.post(f"{base}/confirm", json={"parts": [{"part_number": number, "etag": "x"}]})
        assert response.status_code in (400, 422), f"{number!r}: {response.text}"
        assert response.json()["success"] is False
    assert client.get(base).json()["status"] == "PENDING"
    assert [p for p in _files(runtime) if "_multipart" not in p.parts] == []


def test_huge_json_bodies_are_413_and_create_nothing(client: TestClient, docs: None) -> None:
    big = b'{"metadata": {"title": "' + b"a" * (65 * 1024) + b'"}, "blobs": []}'
    body = assert_error(client.post(OBJECTS, content=big, headers=JSON), 413, "PayloadTooLargeError")
    assert "exceeds" in body["error"]["message"]
    # no Content-Length (chunked): counted while streaming, same answer
    chunks = iter([big[: len(big) // 2], big[len(big) // 2 :]])
    assert_error(client.post(OBJECTS, content=chunks, headers=JSON), 413, "PayloadTooLargeError")
    assert _count(client) == (0, 0)
