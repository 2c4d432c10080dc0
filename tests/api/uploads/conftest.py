"""Upload tests run on both databases and on both blob back ends.

The S3 back end is a real S3 API over HTTP: moto in server mode, started
once per test session as a subprocess on a free loopback port. Each test gets
its own S3 bucket. (moto checks neither signatures nor expiry; those tests
use the local back end, whose verifier is ours.)
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from strataflow.config import Settings
from tests.s3_server import MotoServer, moto_server  # noqa: F401  (the session's S3 server)

SCHEMA = {
    "properties": {
        "content": {"type": "text"},
        "photo": {"type": "image"},
        "clip": {"type": "video"},
        "title": {"type": "string"},
        "views": {"type": "integer"},
    }
}


@pytest.fixture(params=["local", "s3"])
def blob_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(settings: Settings, blob_backend: str, request: pytest.FixtureRequest) -> Settings:
    if blob_backend == "local":
        return settings
    moto: MotoServer = request.getfixturevalue("moto_server")
    bucket = f"sf-{secrets.token_hex(6)}"
    moto.client().create_bucket(Bucket=bucket)
    return settings.model_copy(
        update={
            "blob_url": f"s3://{bucket}/data",
            "s3_endpoint_url": moto.endpoint,
            "s3_region": "us-east-1",
            "s3_access_key_id": "testing",
            "s3_secret_access_key": "testing",
            "s3_path_style": True,
        }
    )


@pytest.fixture
def bucket(client: TestClient, namespace: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/buckets", json={"bucket_name": "files", "bucket_schema": SCHEMA})
    assert response.status_code == 200, response.text
    return dict(response.json())


def put(client: TestClient, url: str, data: bytes, content_type: str | None) -> httpx.Response:
    """PUT to a presigned URL: ours are served by the app under test, S3's by moto."""
    headers = {"Content-Type": content_type} if content_type is not None else {}
    if "/v1/blobs/" in url:
        return client.put(url, content=data, headers=headers)
    return httpx.put(url, content=data, headers=headers)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def create(client: TestClient, **fields: Any) -> dict[str, Any]:
    body = {"filename": "note.txt", "content_type": "text/plain", "blob_property": "content", **fields}
    response = client.post("/v1/buckets/files/uploads", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def upload_and_confirm(client: TestClient, data: bytes, **fields: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    upload = create(client, **fields)
    stored = put(client, upload["presigned_url"], data, upload["content_type"])
    assert stored.status_code == 200, stored.text
    confirmed = client.post(
        f"/v1/buckets/files/uploads/{upload['upload_id']}/confirm",
        json={"etag": stored.headers["ETag"], "file_size_bytes": len(data)},
    )
    assert confirmed.status_code == 200, confirmed.text
    return upload, dict(confirmed.json())
