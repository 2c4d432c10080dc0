"""Blobs are downloads, not pages: an uploaded `evil.html` or `evil.svg` is served back with
nosniff, a sandboxing CSP and as an attachment, on the local store's presigned GETs and on S3's;
passive media still display; the console carries a strict CSP of its own."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from strataflow.config import Settings
from tests.api.uploads.conftest import SCHEMA, upload_and_confirm
from tests.s3_server import MotoServer, moto_server  # noqa: F401  (the session's S3 server)

EVIL_HTML = b"<html><script>fetch('/v1/namespaces',{headers:{Authorization:localStorage.key}})</script></html>"
EVIL_SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.domain)</script></svg>'
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
FILES = {  # filename -> (bytes, content type, blob property, served as an attachment?)
    "evil.html": (EVIL_HTML, "text/html", "content", True),
    "evil.svg": (EVIL_SVG, "image/svg+xml", "photo", True),
    "evil.xml": (b"<?xml version='1.0'?><x/>", "text/xml", "content", True),
    "evil.js": (b"alert(1)", "text/javascript", "content", True),
    "pixel.png": (PNG, "image/png", "photo", False),
    "note.txt": (b"just text", "text/plain", "content", False),
}


@pytest.fixture
def backend() -> str:
    return "sqlite"


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
    return settings.model_copy(update=moto.settings_for(bucket))


@pytest.fixture
def files(client: TestClient, namespace: dict[str, Any]) -> None:
    assert client.post("/v1/buckets", json={"bucket_name": "files", "bucket_schema": SCHEMA}).status_code == 200


def _download(client: TestClient, url: str) -> httpx.Response:
    return client.get(url) if "/v1/blobs/" in url else httpx.get(url)


def _upload_url(client: TestClient, name: str) -> str:
    data, content_type, prop, _attachment = FILES[name]
    upload, _confirmed = upload_and_confirm(client, data, filename=name, content_type=content_type, blob_property=prop)
    got = client.get(f"/v1/buckets/files/uploads/{upload['upload_id']}?return_presigned_urls=true")
    assert got.status_code == 200, got.text
    return str(got.json()["presigned_url"])


@pytest.mark.parametrize("name", sorted(FILES))
def test_uploaded_blobs_come_back_as_downloads(client: TestClient, files: None, blob_backend: str, name: str) -> None:
    data, _type, _prop, attachment = FILES[name]
    served = _download(client, _upload_url(client, name))
    assert served.status_code == 200 and served.content == data
    disposition = served.headers.get("content-disposition", "")
    if attachment:
        assert disposition.startswith("attachment") and name in disposition
    else:
        assert not disposition.startswith("attachment")
    if blob_backend == "local":  # S3 serves its own headers; only the disposition can be signed into its URL
        assert served.headers["x-content-type-options"] == "nosniff"
        assert served.headers["content-security-policy"] == "sandbox"


def test_inline_blobs_are_downloads_too(client: TestClient, files: None, blob_backend: str) -> None:
    blob = {"property": "content", "type": "text", "data": EVIL_HTML.decode(), "content_type": "text/html"}
    made = client.post("/v1/buckets/files/objects", json={"blobs": [blob]})
    assert made.status_code == 200, made.text
    got = client.get(f"/v1/buckets/files/objects/{made.json()['object_id']}?return_presigned_urls=true").json()
    served = _download(client, got["blobs"][0]["properties"]["presigned_url"])
    assert served.status_code == 200 and served.content == EVIL_HTML
    assert served.headers["content-disposition"].startswith("attachment")
    if blob_backend == "local":
        assert served.headers["content-type"].startswith("application/octet-stream")
        assert served.headers["x-content-type-options"] == "nosniff"


def test_console_has_a_strict_csp(client: TestClient, blob_backend: str) -> None:
    for path in ("/console/", "/console/app.js", "/console/style.css"):
        served = client.get(path)
        assert served.status_code == 200
        policy = dict(part.strip().split(" ", 1) for part in served.headers["content-security-policy"].split(";"))
        assert policy["default-src"] == "'none'" and policy["script-src"] == "'self'"
        assert policy["style-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
        assert "unsafe" not in served.headers["content-security-policy"]
        assert served.headers["x-content-type-options"] == "nosniff"
    connect = policy["connect-src"].split()
    if blob_backend == "s3":  # previews load from the S3 endpoint the presigned URLs name
        assert client.app.state.runtime.settings.s3_endpoint_url in connect  # type: ignore[attr-defined]
