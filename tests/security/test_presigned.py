"""Presigned URLs inside the real upload flow: a refused PUT changes no row and writes no byte.

tests/api/uploads/test_blob_urls.py checks the local verifier on bare keys; here
the same attacks go through uploads, so we can also assert the database side
(upload still PENDING, nothing to confirm, no object), and replays after the
upload is closed.

What moto enforces (checked against moto 5.2.5 in server mode): nothing, for
presigned URLs. By default it accepts a tampered signature, another key, another
Content-Type and an expired URL alike; with IAM auth switched on
(INITIAL_NO_AUTH_ACTION_COUNT) it answers 500 even to a valid presigned PUT. So
signature attacks run on the local store, whose verifier is ours; on S3 we test
what Strataflow itself enforces at confirm.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from strataflow.blobs.local import LocalBlobStore
from strataflow.config import Settings
from strataflow.runtime import Runtime
from tests.api.uploads.conftest import SCHEMA, create, put, upload_and_confirm
from tests.helpers import assert_error, wait_task
from tests.s3_server import MotoServer, moto_server  # noqa: F401  (the session's S3 server)

BASE = "/v1/buckets/files/uploads"


@pytest.fixture
def blob_backend() -> str:
    return "local"  # the S3 test below overrides this by parametrizing it


@pytest.fixture
def settings(settings: Settings, blob_backend: str, request: pytest.FixtureRequest) -> Settings:
    if blob_backend == "local":
        return settings
    moto: MotoServer = request.getfixturevalue("moto_server")
    bucket = f"sf-{secrets.token_hex(6)}"
    moto.client().create_bucket(Bucket=bucket)
    return settings.model_copy(update=moto.settings_for(bucket))


@pytest.fixture
def bucket(client: TestClient, namespace: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/buckets", json={"bucket_name": "files", "bucket_schema": SCHEMA})
    assert response.status_code == 200, response.text
    return dict(response.json())


def _files(runtime: Runtime) -> dict[str, str]:
    """Every file under the local blob root, with its SHA-256."""
    assert isinstance(runtime.blobs, LocalBlobStore)
    return {
        str(p.relative_to(runtime.blobs.root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in runtime.blobs.root.rglob("*")
        if p.is_file()
    }


def _tamper(url: str) -> str:
    signature = parse_qs(urlsplit(url).query)["signature"][0]
    return url.replace(signature, ("0" if signature[0] != "0" else "1") + signature[1:])


def _state(client: TestClient) -> tuple[list[tuple[str, str]], int]:
    uploads = client.post(f"{BASE}/list", json={"page_size": 100}).json()["results"]
    objects = client.post("/v1/buckets/files/objects/list", json={}).json()["results"]
    return sorted((u["upload_id"], u["status"]) for u in uploads), len(objects)


def test_refused_puts_leave_rows_and_bytes_unchanged(
    client: TestClient, bucket: dict[str, Any], runtime: Runtime
) -> None:
    target, other = create(client), create(client, filename="other.txt")
    store = runtime.blobs
    assert isinstance(store, LocalBlobStore)
    other_path = urlsplit(other["presigned_url"]).path
    attacks = {
        "tampered signature": (_tamper(target["presigned_url"]), "text/plain"),
        "key changed to another upload's": (
            target["presigned_url"].replace(urlsplit(target["presigned_url"]).path, other_path),
            "text/plain",
        ),
        "content type changed": (target["presigned_url"], "text/html"),
        "no content type": (target["presigned_url"], None),
        "expired": (store.presigned_put_url(target["s3_key"], "text/plain", -5), "text/plain"),
    }
    before = _state(client)
    for name, (url, content_type) in attacks.items():
        response = put(client, url, b"<script>evil</script>", content_type)
        assert response.status_code == 403, f"{name}: {response.text}"
        assert_error(response, 403, "ForbiddenError")
        assert _files(runtime) == {}, name
    assert _state(client) == before
    nothing = assert_error(client.post(f"{BASE}/{target['upload_id']}/confirm", json={}), 400)
    assert "Nothing has been uploaded" in nothing["error"]["message"]
    assert _state(client) == before  # the failed confirm changed nothing either


def test_replay_after_completion_is_refused(client: TestClient, bucket: dict[str, Any], runtime: Runtime) -> None:
    original = b"the confirmed content"
    upload, confirmed = upload_and_confirm(client, original)
    files, state = _files(runtime), _state(client)
    replay = put(client, upload["presigned_url"], b"swapped after the confirm", "text/plain")
    body = assert_error(replay, 409, "ConflictError")
    assert body["error"]["details"] == {"upload_id": upload["upload_id"], "status": "COMPLETED"}
    assert _files(runtime) == files and _state(client) == state
    obj = client.get(f"/v1/buckets/files/objects/{confirmed['object_id']}").json()
    assert obj["blobs"][0]["details"]["hash"] == hashlib.sha256(original).hexdigest()
    record = client.get(f"{BASE}/{upload['upload_id']}", params={"return_presigned_urls": True}).json()
    assert client.get(record["presigned_url"]).content == original


def test_replay_after_cancel_and_after_bucket_delete_writes_nothing(
    client: TestClient, bucket: dict[str, Any], runtime: Runtime
) -> None:
    canceled = create(client)
    assert client.delete(f"{BASE}/{canceled['upload_id']}").status_code == 204
    assert_error(put(client, canceled["presigned_url"], b"late", "text/plain"), 409, "ConflictError")
    orphan = create(client, filename="orphan.txt")
    task = client.delete("/v1/buckets/files").json()["task_id"]
    assert wait_task(client, task)["status"] == "COMPLETED"
    assert_error(put(client, orphan["presigned_url"], b"into a deleted bucket", "text/plain"), 404)
    assert _files(runtime) == {}


def test_part_urls_cannot_be_redirected_or_replayed(
    client: TestClient, bucket: dict[str, Any], runtime: Runtime
) -> None:
    part = 5 * 1024 * 1024
    data = b"p" * part + b"tail"
    upload = create(
        client, filename="movie.mp4", content_type="video/mp4", blob_property="clip", file_size_bytes=len(data)
    )
    plan = client.post(f"{BASE}/{upload['upload_id']}/multipart", json={"part_size_bytes": part}).json()
    urls = {p["part_number"]: p["presigned_url"] for p in plan["parts"]}
    # part 1's URL aimed at part 2's slot: the part number is inside the signed key
    assert_error(put(client, urls[1].replace("/00001?", "/00002?"), b"x", None), 403, "ForbiddenError")
    assert_error(put(client, _tamper(urls[2]), b"x", None), 403, "ForbiddenError")
    assert not [f for f in _files(runtime) if not f.endswith(".etag")]
    assert put(client, urls[1], data[:part], None).status_code == 200
    assert put(client, urls[2], data[part:], None).status_code == 200
    assert client.post(f"{BASE}/{upload['upload_id']}/confirm", json={}).status_code == 200
    files = _files(runtime)
    assert_error(put(client, urls[1], b"r" * part, None), 404, "NotFoundError")
    assert _files(runtime) == files


@pytest.mark.parametrize("blob_backend", ["s3"])
def test_s3_content_type_swap_is_caught_at_confirm(
    client: TestClient, runtime: Runtime, bucket: dict[str, Any]
) -> None:
    # moto stores the PUT whatever its Content-Type (real S3 refuses it, the type being signed);
    # the confirm compares the stored type with the declared one and creates nothing.
    assert runtime.blobs.scheme == "s3"
    upload = create(client)
    assert put(client, upload["presigned_url"], b"<html>", "text/html").status_code == 200
    before = _state(client)
    body = assert_error(client.post(f"{BASE}/{upload['upload_id']}/confirm", json={}), 400)
    assert "content_type" in body["error"]["details"]["mismatches"]
    assert _state(client) == before == ([(upload["upload_id"], "PENDING")], 0)
