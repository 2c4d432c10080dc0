"""Bad input is refused with a clear error before any URL is minted, and leaves nothing behind.

These rules do not depend on where bytes are stored, so they run on the local
back end only (on both databases).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from strataflow.clock import utcnow
from strataflow.runtime import Runtime
from strataflow.store.tables import Upload
from tests.api.uploads.conftest import SCHEMA, create, put, upload_and_confirm
from tests.helpers import assert_error

BASE = "/v1/buckets/files/uploads"


@pytest.fixture
def blob_backend() -> str:
    return "local"


def _assert_nothing_left(client: TestClient, runtime: Runtime) -> None:
    stats = client.post(f"{BASE}/list", json={}).json()["stats"]
    assert stats["total_uploads"] == 0, stats
    root = runtime.settings.blob_dir
    assert not [p for p in root.rglob("*") if p.is_file()] if root.exists() else True


@pytest.mark.parametrize(
    "filename", ["../etc/passwd", "..", "a/../../b.txt", "dir\\evil.txt", "x/y.txt", "bad\x00name.txt", " padded.txt"]
)
def test_unsafe_filenames_are_refused(
    client: TestClient, bucket: dict[str, Any], runtime: Runtime, filename: str
) -> None:
    response = client.post(BASE, json={"filename": filename, "content_type": "text/plain", "blob_property": "content"})
    assert "filename" in assert_error(response, 400, "BadRequestError")["error"]["message"]
    _assert_nothing_left(client, runtime)


@pytest.mark.parametrize(
    ("fields", "status", "needle"),
    [
        ({"presigned_url_expiration": 59}, 422, "presigned_url_expiration"),
        ({"presigned_url_expiration": 86401}, 422, "presigned_url_expiration"),
        ({"content_type": "not a mime"}, 400, "content_type"),
        ({"blob_property": "missing"}, 400, "blob_property"),
        ({"blob_property": "title"}, 400, "holds no file"),
        ({"content_type": "image/png"}, 400, "cannot hold a text blob"),
        ({"blob_type": "video"}, 400, "does not match the schema type"),
        ({"blob_type": "string", "create_object_on_confirm": False}, 400, "not a file type"),
        ({"file_size_bytes": 10**13}, 400, "exceeds the limit"),
        ({"file_hash": "ABC"}, 422, "file_hash"),
        ({"object_metadata": {"views": "many"}}, 400, "views"),
    ],
)
def test_invalid_create_requests(
    client: TestClient, bucket: dict[str, Any], runtime: Runtime, fields: dict[str, Any], status: int, needle: str
) -> None:
    body = {"filename": "note.txt", "content_type": "text/plain", "blob_property": "content", **fields}
    error = assert_error(client.post(BASE, json=body), status)
    assert needle in str(error["error"]), error
    _assert_nothing_left(client, runtime)


def test_unknown_bucket_and_missing_namespace(client: TestClient, bucket: dict[str, Any]) -> None:
    body = {"filename": "a.txt", "content_type": "text/plain"}
    assert_error(client.post("/v1/buckets/nope/uploads", json=body), 404, "NotFoundError")
    headerless = client.post(BASE, json=body, headers={"X-Namespace": ""})
    assert headerless.status_code in (400, 404)


def test_batch_create_is_all_or_nothing(client: TestClient, bucket: dict[str, Any], runtime: Runtime) -> None:
    good = {"filename": "ok.txt", "content_type": "text/plain", "blob_property": "content"}
    bad = {**good, "filename": "../../escape.txt"}
    error = assert_error(client.post(f"{BASE}/batch", json={"uploads": [good, good, bad]}), 400)
    assert error["error"]["message"].startswith("uploads[2]") and error["error"]["details"]["index"] == 2
    assert_error(client.post(f"{BASE}/batch", json={"uploads": [good] * 101}), 422, "ValidationError")
    assert_error(client.post(f"{BASE}/batch", json={"uploads": []}), 422)
    _assert_nothing_left(client, runtime)


def test_batch_confirm_refuses_bad_requests_without_a_task(client: TestClient, bucket: dict[str, Any]) -> None:
    assert client.post("/v1/buckets", json={"bucket_name": "other", "bucket_schema": SCHEMA}).status_code == 200
    foreign = client.post(
        "/v1/buckets/other/uploads",
        json={"filename": "x.txt", "content_type": "text/plain", "blob_property": "content"},
    ).json()
    mine = create(client)
    url = f"{BASE}/confirm/batch"
    too_many = [{"upload_id": f"upl_{i:016d}"} for i in range(101)]
    assert_error(client.post(url, json={"confirmations": too_many}), 422, "ValidationError")
    other = assert_error(
        client.post(
            url, json={"confirmations": [{"upload_id": mine["upload_id"]}, {"upload_id": foreign["upload_id"]}]}
        ),
        400,
    )
    assert other["error"]["details"]["upload_ids"] == [foreign["upload_id"]]
    twice = [{"upload_id": mine["upload_id"]}, {"upload_id": mine["upload_id"]}]
    assert "more than once" in assert_error(client.post(url, json={"confirmations": twice}), 400)["error"]["message"]
    malformed = [{"upload_id": mine["upload_id"], "file_size_bytes": 0}]
    assert (
        "confirmations[0]" in assert_error(client.post(url, json={"confirmations": malformed}), 400)["error"]["message"]
    )
    assert_error(client.post(url, json={"confirmations": [{"etag": "x"}]}), 400)
    tasks = client.post("/v1/tasks/list", json={"task_type": "api_buckets_uploads_batch_confirm"}).json()
    assert tasks["results"] == []
    assert client.get(f"{BASE}/{mine['upload_id']}").json()["status"] == "PENDING"


def test_confirming_an_upload_of_another_bucket_is_not_found(client: TestClient, bucket: dict[str, Any]) -> None:
    assert client.post("/v1/buckets", json={"bucket_name": "other", "bucket_schema": SCHEMA}).status_code == 200
    foreign = client.post(
        "/v1/buckets/other/uploads",
        json={"filename": "x.txt", "content_type": "text/plain", "blob_property": "content"},
    ).json()
    put(client, foreign["presigned_url"], b"abc", "text/plain")
    assert_error(client.post(f"{BASE}/{foreign['upload_id']}/confirm", json={}), 404, "NotFoundError")
    assert client.get(f"/v1/buckets/other/uploads/{foreign['upload_id']}").json()["status"] == "PENDING"


def test_expired_uploads_fail_and_cannot_be_confirmed(
    client: TestClient, bucket: dict[str, Any], runtime: Runtime
) -> None:
    upload = create(client, presigned_url_expiration=60)
    put(client, upload["presigned_url"], b"late", "text/plain")
    with runtime.db.transaction() as session:  # an hour passes
        session.execute(
            update(Upload)
            .where(Upload.upload_id == upload["upload_id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    listed = client.post(f"{BASE}/list", json={}).json()
    assert listed["results"][0]["status"] == "FAILED" and listed["stats"]["uploads_by_status"] == {"FAILED": 1}
    error = assert_error(client.post(f"{BASE}/{upload['upload_id']}/confirm", json={}), 400)
    assert "FAILED" in error["error"]["message"] and "expired" in error["error"]["message"]
    assert client.delete(f"{BASE}/{upload['upload_id']}").status_code == 204
    record = client.get(f"{BASE}/{upload['upload_id']}").json()
    assert record["status"] == "FAILED"  # a terminal status never changes; the bytes are gone
    assert runtime.blobs.head(upload["s3_key"]) is None


def test_unique_key_already_taken_skips_the_upload(client: TestClient, namespace: dict[str, Any]) -> None:
    schema = {"properties": {"content": {"type": "text"}, "sku": {"type": "string"}}}
    created = client.post(
        "/v1/buckets", json={"bucket_name": "files", "bucket_schema": schema, "unique_key": {"fields": ["sku"]}}
    )
    assert created.status_code == 200, created.text
    _, first = upload_and_confirm(client, b"v1", object_metadata={"sku": "A-1"})
    skipped = create(client, filename="v2.txt", object_metadata={"sku": "A-1"})
    assert skipped["skipped_unique_key"] is True and skipped["existing_object_id"] == first["object_id"]
    assert skipped["presigned_url"] is None and skipped["status"] == "SKIPPED"
    missing_key = client.post(
        BASE, json={"filename": "n.txt", "content_type": "text/plain", "blob_property": "content"}
    )
    assert "sku" in assert_error(missing_key, 400)["error"]["message"]


def test_quota_counts_live_uploads(client: TestClient, bucket: dict[str, Any], runtime: Runtime) -> None:
    runtime.settings.upload_quota_bytes = 1000
    try:
        create(client, file_size_bytes=600)
        error = assert_error(
            client.post(
                BASE,
                json={
                    "filename": "b.txt",
                    "content_type": "text/plain",
                    "blob_property": "content",
                    "file_size_bytes": 500,
                },
            ),
            400,
        )
        assert error["error"]["details"]["used_bytes"] == 600
    finally:
        runtime.settings.upload_quota_bytes = None


def test_list_filters_search_sort_and_stats(client: TestClient, bucket: dict[str, Any]) -> None:
    for i, name in enumerate(["alpha.txt", "beta.txt", "gamma.txt"]):
        create(client, filename=name, file_size_bytes=100 * (i + 1), metadata={"team": "red" if i else "blue"})
    listed = client.post(
        f"{BASE}/list",
        params={"include_total": True},
        json={"filters": {"metadata.team": "red"}, "sort": {"field": "file_size_bytes", "direction": "desc"}},
    ).json()
    assert [r["filename"] for r in listed["results"]] == ["gamma.txt", "beta.txt"]
    assert listed["pagination"]["total"] == 2
    assert listed["stats"] == {
        "total_uploads": 2,
        "total_size_bytes": 500,
        "uploads_by_status": {"PENDING": 2},
        "avg_file_size_bytes": 250.0,
        "unique_buckets": 1,
    }
    searched = client.post(f"{BASE}/list", json={"search": "BLUE"}).json()
    assert [r["filename"] for r in searched["results"]] == ["alpha.txt"]
    paged = client.post(f"{BASE}/list", json={"limit": 1}).json()
    assert len(paged["results"]) == 1 and paged["pagination"]["next_cursor"]
    assert all(r["presigned_url"] is None for r in paged["results"])
    assert_error(client.post(f"{BASE}/list", json={"filters": {"password": "x"}}), 400)
    assert_error(client.post(f"{BASE}/list", json={"limit": 101}), 422)


def test_killing_a_background_confirm_fails_the_upload(
    client: TestClient, bucket: dict[str, Any], runtime: Runtime
) -> None:
    runtime.jobs.stop()  # nothing picks the task up: it can only be killed
    upload = create(client)
    put(client, upload["presigned_url"], b"queued", "text/plain")
    queued = client.post(f"{BASE}/{upload['upload_id']}/confirm", params={"async": True}, json={}).json()
    assert queued["status"] == "PROCESSING"
    again = client.post(f"{BASE}/{upload['upload_id']}/confirm", json={}).json()
    assert again["status"] == "PROCESSING" and again["task_id"] == queued["task_id"]
    assert_error(client.delete(f"{BASE}/{upload['upload_id']}"), 400)
    assert client.delete(f"/v1/tasks/{queued['task_id']}").json()["success"] is True
    record = client.get(f"{BASE}/{upload['upload_id']}").json()
    assert record["status"] == "FAILED" and "killed" in record["message"]
    assert client.get(f"/v1/tasks/{queued['task_id']}").json()["status"] == "CANCELED"
