"""The local store's presigned URLs: only the signed method, key, Content-Type and time pass.

The verifier is ours, so these run against the local back end (one database
is enough: no rows are involved).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient

from strataflow.blobs.local import LocalBlobStore
from strataflow.runtime import Runtime
from tests.helpers import assert_error

KEY = "tests/some dir/report (final).txt"


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def blob_backend() -> str:
    return "local"


@pytest.fixture
def store(runtime: Runtime) -> LocalBlobStore:
    assert isinstance(runtime.blobs, LocalBlobStore)
    return runtime.blobs


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _with_query(url: str, **changes: Any) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update({k: str(v) for k, v in changes.items()})
    query = {k: v for k, v in query.items() if v != "None"}
    return f"{parts.path}?{urlencode(query)}"


def test_signed_put_streams_to_disk_and_get_reads_back(client: TestClient, store: LocalBlobStore) -> None:
    data = b"x" * (3 * 1024 * 1024 + 17)  # several batches of the receive loop
    response = client.put(
        store.presigned_put_url(KEY, "text/plain", 60), content=data, headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    info = store.head(KEY)
    assert info is not None and info.size == len(data) and info.sha256 == hashlib.sha256(data).hexdigest()
    fetched = client.get(store.presigned_get_url(KEY, 60))
    assert fetched.status_code == 200 and fetched.content == data
    assert fetched.headers["ETag"] == response.headers["ETag"]
    assert not [p for p in _files(store.root) if p.name.startswith(".tmp-")]


@pytest.mark.parametrize(
    "case",
    ["tampered", "expired", "unsigned", "other_key", "wrong_type", "no_type", "get_url_for_put", "longer_expiry"],
)
def test_refused_puts_write_nothing(client: TestClient, store: LocalBlobStore, case: str) -> None:
    url = store.presigned_put_url(KEY, "text/plain", 60)
    content_type: str | None = "text/plain"
    if case == "tampered":
        signature = parse_qs(urlsplit(url).query)["signature"][0]
        url = _with_query(url, signature=("0" if signature[0] != "0" else "1") + signature[1:])
    elif case == "expired":
        url = store.presigned_put_url(KEY, "text/plain", -5)
    elif case == "unsigned":
        url = _with_query(url, signature=None, expires=None)
    elif case == "other_key":
        url = url.replace("report%20%28final%29.txt", "other.txt")
    elif case == "wrong_type":
        content_type = "application/x-sh"
    elif case == "no_type":
        content_type = None
    elif case == "get_url_for_put":
        url = store.presigned_get_url(KEY, 60)
    elif case == "longer_expiry":
        expires = int(parse_qs(urlsplit(url).query)["expires"][0])
        url = _with_query(url, expires=expires + 3600)
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.put(url, content=b"payload", headers=headers)
    assert_error(response, 403, "ForbiddenError")
    assert _files(store.root) == []


def test_put_url_cannot_read_and_missing_blob_is_404(client: TestClient, store: LocalBlobStore) -> None:
    client.put(store.presigned_put_url(KEY, "text/plain", 60), content=b"abc", headers={"Content-Type": "text/plain"})
    assert_error(client.get(store.presigned_put_url(KEY, "text/plain", 60)), 403)
    assert_error(client.get(store.presigned_get_url(KEY, -1)), 403)
    assert_error(client.get(store.presigned_get_url("tests/absent.bin", 60)), 404)


def test_body_over_the_upload_limit_is_refused(client: TestClient, store: LocalBlobStore, runtime: Runtime) -> None:
    runtime.settings.max_upload_bytes = 1024
    try:
        url = store.presigned_put_url(KEY, "text/plain", 60)
        too_big = client.put(url, content=b"y" * 1025, headers={"Content-Type": "text/plain"})
        assert_error(too_big, 413, "PayloadTooLargeError")
        chunked = client.put(url, content=iter([b"y" * 600, b"y" * 600]), headers={"Content-Type": "text/plain"})
        assert_error(chunked, 413)
    finally:
        runtime.settings.max_upload_bytes = 5 * 1024**3
    assert _files(store.root) == []


def test_keys_escaping_the_store_are_refused_even_when_signed(client: TestClient, store: LocalBlobStore) -> None:
    signature = store.sign("PUT", "../outside.txt", "text/plain", 2_000_000_000)
    response = client.put(
        f"/v1/blobs/..%2Foutside.txt?expires=2000000000&signature={signature}",
        content=b"x",
        headers={"Content-Type": "text/plain"},
    )
    assert_error(response, 400, "BadRequestError")  # even a valid signature cannot name such a key
    assert not (store.root.parent / "outside.txt").exists()
