"""The upload lifecycle on SQLite and PostgreSQL, with local storage and with S3 (moto)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi.testclient import TestClient

from strataflow.runtime import Runtime
from tests.api.uploads.conftest import create, md5, put, sha256, upload_and_confirm
from tests.collection_flows import text_collection
from tests.helpers import assert_error, wait_task

BASE = "/v1/buckets/files/uploads"


def _objects(client: TestClient) -> list[dict[str, Any]]:
    response = client.post("/v1/buckets/files/objects/list", json={})
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


def _download(client: TestClient, url: str) -> bytes:
    response = client.get(url) if "/v1/blobs/" in url else httpx.get(url)
    assert response.status_code == 200, response.text
    return response.content


def test_put_then_confirm_creates_one_draft_object(client: TestClient, bucket: dict[str, Any]) -> None:
    data = b"the quick brown fox\n" * 50
    upload, confirmed = upload_and_confirm(
        client,
        data,
        object_metadata={"title": "Fox", "views": 3},
        metadata={"source": "test"},
        file_size_bytes=len(data),
    )
    assert upload["status"] == "PENDING" and upload["upload_id"].startswith("upl_")
    assert upload["s3_key"].endswith(f"/api_buckets_uploads_create/{upload['upload_id']}/note.txt")
    assert confirmed["status"] == "COMPLETED" and confirmed["etag"] == md5(data)
    assert confirmed["file_size_bytes"] == len(data) and confirmed["file_hash"] == sha256(data)

    obj = client.get(f"/v1/buckets/files/objects/{confirmed['object_id']}").json()
    assert obj["status"] == "DRAFT" and obj["metadata"] == {"title": "Fox", "views": 3}
    assert obj["source_details"] == [{"type": "bucket", "source_id": bucket["bucket_id"]}]
    [blob] = obj["blobs"]
    assert (blob["property"], blob["type"]) == ("content", "text")
    assert blob["properties"]["url"].endswith(upload["s3_key"])
    assert blob["details"] == {
        "filename": "note.txt",
        "size_bytes": len(data),
        "mime_type": "text/plain",
        "hash": sha256(data),
    }

    again = client.post(f"{BASE}/{upload['upload_id']}/confirm", json={})
    assert again.status_code == 200 and again.json()["object_id"] == confirmed["object_id"]
    assert len(_objects(client)) == 1

    record = client.get(f"{BASE}/{upload['upload_id']}", params={"return_presigned_urls": True}).json()
    assert record["status"] == "COMPLETED" and record["metadata"] == {"source": "test"}
    assert record["object_id"] == confirmed["object_id"] and record["verified_at"]
    assert _download(client, record["presigned_url"]) == data
    assert client.get(f"{BASE}/{upload['upload_id']}").json()["presigned_url"] is None


def test_wrong_claims_are_refused_and_the_upload_stays_confirmable(
    client: TestClient, bucket: dict[str, Any], runtime: Runtime
) -> None:
    data = b"0123456789" * 10
    upload = create(client, file_size_bytes=len(data), file_hash=sha256(data))
    url = f"{BASE}/{upload['upload_id']}/confirm"

    missing = assert_error(client.post(url, json={}), 400, "BadRequestError")
    assert "PUT the file" in missing["error"]["message"]

    put(client, upload["presigned_url"], data[:-1] + b"X", "text/plain")  # right size, wrong bytes
    wrong_etag = assert_error(client.post(url, json={"etag": f'"{md5(data)}"'}), 400)
    assert "etag" in wrong_etag["error"]["details"]["mismatches"]
    wrong_hash = assert_error(client.post(url, json={}), 400)
    assert "SHA-256" in wrong_hash["error"]["message"]

    put(client, upload["presigned_url"], data + b"!", "text/plain")
    wrong_size = assert_error(client.post(url, json={"file_size_bytes": len(data)}), 400)
    assert set(wrong_size["error"]["details"]["mismatches"]) == {"file_size_bytes", "declared_file_size_bytes"}

    assert client.get(f"{BASE}/{upload['upload_id']}").json()["status"] == "PENDING"
    assert _objects(client) == []

    stored = put(client, upload["presigned_url"], data, "text/plain")
    ok = client.post(url, json={"etag": stored.headers["ETag"], "file_size_bytes": len(data)})
    assert ok.status_code == 200 and ok.json()["status"] == "COMPLETED"
    assert len(_objects(client)) == 1


def test_batch_create_then_batch_confirm_reports_each_item(client: TestClient, bucket: dict[str, Any]) -> None:
    created = client.post(
        f"{BASE}/batch",
        json={
            "uploads": [
                {
                    "filename": f"f{i}.txt",
                    "content_type": "text/plain",
                    "blob_property": "content",
                    "metadata": {"i": i},
                    "object_metadata": {"views": i},
                }
                for i in range(3)
            ],
            "shared_metadata": {"batch": "b1", "i": -1},
            "shared_object_metadata": {"title": "shared"},
        },
    )
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["total"] == 3 and [u["metadata"] for u in body["uploads"]] == [
        {"batch": "b1", "i": i} for i in range(3)
    ]
    confirmations = []
    for i, upload in enumerate(body["uploads"]):
        stored = put(client, upload["presigned_url"], f"file {i}".encode(), "text/plain")
        etag = stored.headers["ETag"] if i != 1 else '"00000000000000000000000000000000"'
        confirmations.append({"upload_id": upload["upload_id"], "etag": etag, "file_size_bytes": 6})

    answer = client.post(f"{BASE}/confirm/batch", json={"confirmations": confirmations})
    assert answer.status_code == 200, answer.text
    queued = answer.json()
    assert queued["confirmations_count"] == 3 and queued["task"]["task_type"] == "api_buckets_uploads_batch_confirm"
    task = wait_task(client, queued["task_id"])
    assert task["status"] == "COMPLETED_WITH_ERRORS"
    outputs = {o["upload_id"]: o for o in task["outputs"]}
    bad = outputs[body["uploads"][1]["upload_id"]]
    assert bad["success"] is False and "etag" in bad["error"]
    good = [o for o in task["outputs"] if o["success"]]
    assert len(good) == 2 and all(o["status"] == "COMPLETED" and o["object_id"] for o in good)
    objects = _objects(client)
    assert sorted(o["metadata"]["views"] for o in objects) == [0, 2]
    assert all(o["metadata"]["title"] == "shared" for o in objects)

    # The failed item is still PENDING; a right claim confirms it.
    retry = client.post(f"{BASE}/{bad['upload_id']}/confirm", json={"file_size_bytes": 6})
    assert retry.status_code == 200 and retry.json()["status"] == "COMPLETED"


def test_duplicate_hash_returns_the_original_upload(client: TestClient, bucket: dict[str, Any]) -> None:
    data = b"same bytes every time"
    first, confirmed = upload_and_confirm(client, data, file_hash=sha256(data))

    again = create(client, filename="copy.txt", file_hash=sha256(data))
    assert again["is_duplicate"] is True and again["presigned_url"] is None
    assert again["upload_id"] == again["duplicate_of_upload_id"] == first["upload_id"]
    assert again["object_id"] == confirmed["object_id"] and again["message"]

    fresh = create(client, filename="copy.txt", file_hash=sha256(data), skip_duplicates=False)
    assert fresh["is_duplicate"] is False and fresh["presigned_url"]

    # Without a hash at create, the duplicate is found at confirm: no second object.
    _, late = upload_and_confirm(client, data, filename="late.txt")
    record = client.get(f"{BASE}/{late['upload_id']}").json()
    assert record["is_duplicate"] is True and record["duplicate_of_upload_id"] == first["upload_id"]
    assert late["object_id"] == confirmed["object_id"]
    assert len(_objects(client)) == 1


def test_uploads_without_object_back_a_multi_blob_object(client: TestClient, bucket: dict[str, Any]) -> None:
    _, text = upload_and_confirm(client, b"caption text", create_object_on_confirm=False)
    _, photo = upload_and_confirm(
        client,
        b"\x89PNG fake image",
        filename="cat.png",
        content_type="image/png",
        blob_property="photo",
        create_object_on_confirm=False,
    )
    assert text["object_id"] is None and photo["object_id"] is None and _objects(client) == []

    response = client.post(
        "/v1/buckets/files/objects",
        json={
            "blobs": [
                {"property": "content", "type": "text", "upload_id": text["upload_id"]},
                {"property": "photo", "type": "IMAGE", "upload_id": photo["upload_id"]},
            ],
            "metadata": {"title": "two blobs"},
        },
    )
    assert response.status_code == 200, response.text
    obj = response.json()
    by_property = {b["property"]: b for b in obj["blobs"]}
    assert by_property["photo"]["type"] == "image"
    assert by_property["photo"]["details"]["hash"] == sha256(b"\x89PNG fake image")
    assert by_property["content"]["details"]["size_bytes"] == len(b"caption text")
    assert client.get(f"{BASE}/{text['upload_id']}").json()["object_id"] == obj["object_id"]

    reused = client.post(
        "/v1/buckets/files/objects",
        json={"blobs": [{"property": "content", "type": "text", "upload_id": text["upload_id"]}]},
    )
    assert_error(reused, 409, "ConflictError")
    pending = create(client, filename="later.txt", create_object_on_confirm=False)
    not_yet = client.post(
        "/v1/buckets/files/objects",
        json={"blobs": [{"property": "content", "type": "text", "upload_id": pending["upload_id"]}]},
    )
    assert "PENDING" in assert_error(not_yet, 400)["error"]["message"]
    assert len(_objects(client)) == 1


def test_multipart_parts_in_any_order_then_confirm(client: TestClient, bucket: dict[str, Any]) -> None:
    part_size = 5 * 1024 * 1024
    data = bytes(range(256)) * (part_size // 256) + b"tail-bytes"
    upload = create(
        client, filename="movie.mp4", content_type="video/mp4", blob_property="clip", file_size_bytes=len(data)
    )
    opened = client.post(f"{BASE}/{upload['upload_id']}/multipart", json={"part_size_bytes": part_size})
    assert opened.status_code == 200, opened.text
    plan = opened.json()
    assert plan["part_count"] == 2 and [p["size_bytes"] for p in plan["parts"]] == [part_size, len(data) - part_size]
    urls = {p["part_number"]: p["presigned_url"] for p in plan["parts"]}

    assert put(client, urls[2], data[part_size:], None).status_code == 200
    missing = assert_error(client.post(f"{BASE}/{upload['upload_id']}/confirm", json={}), 400)
    assert missing["error"]["details"]["missing_parts"] == [1]

    first = put(client, urls[1], data[:part_size], "application/octet-stream")
    assert first.status_code == 200 and first.headers["ETag"].strip('"') == md5(data[:part_size])
    retried = put(client, urls[2], data[part_size:], None)  # sending a part again is fine
    assert retried.status_code == 200

    resumed = client.post(f"{BASE}/{upload['upload_id']}/multipart", json={}).json()
    assert resumed["multipart_upload_id"] == plan["multipart_upload_id"] and resumed["parts_uploaded"] == 2
    status = client.get(f"{BASE}/{upload['upload_id']}/multipart").json()
    assert all(p["uploaded"] and p["presigned_url"] is None for p in status["parts"])

    confirmed = client.post(
        f"{BASE}/{upload['upload_id']}/confirm",
        json={"file_size_bytes": len(data), "parts": [{"part_number": 1, "etag": first.headers["ETag"]}]},
    )
    assert confirmed.status_code == 200, confirmed.text
    answer = confirmed.json()
    assert answer["status"] == "COMPLETED" and answer["etag"].endswith("-2")
    assert answer["file_hash"] == sha256(data)
    record = client.get(f"{BASE}/{upload['upload_id']}", params={"return_presigned_urls": True}).json()
    assert _download(client, record["presigned_url"]) == data
    assert client.get(f"{BASE}/{upload['upload_id']}/multipart").status_code == 404
    if "/v1/blobs/" in urls[2]:  # (S3 answers NoSuchUpload here too; moto accepts it)
        late = put(client, urls[2], data[part_size:], None)  # a part sent after the join is refused
        assert late.status_code == 404, late.text


def test_async_confirm_runs_as_a_task(client: TestClient, bucket: dict[str, Any]) -> None:
    data = b"background please"
    upload = create(client)
    put(client, upload["presigned_url"], data, "text/plain")
    queued = client.post(
        f"{BASE}/{upload['upload_id']}/confirm",
        params={"async": "true"},
        json={"file_size_bytes": len(data), "auto_submit_batch": False},
    )
    assert queued.status_code == 200, queued.text
    assert queued.json()["status"] == "PROCESSING" and queued.json()["task_id"]
    task = wait_task(client, queued.json()["task_id"])
    assert task["status"] == "COMPLETED" and task["task_type"] == "api_buckets_uploads_confirm"
    record = client.get(f"{BASE}/{upload['upload_id']}").json()
    assert record["status"] == "COMPLETED" and record["object_id"] == task["outputs"][0]["object_id"]
    assert assert_error(client.delete(f"{BASE}/{upload['upload_id']}"), 400)["error"]["details"]["object_id"]


def test_delete_cancels_and_removes_bytes(client: TestClient, bucket: dict[str, Any], runtime: Runtime) -> None:
    upload = create(client)
    put(client, upload["presigned_url"], b"soon gone", "text/plain")
    assert runtime.blobs.head(upload["s3_key"]) is not None
    assert client.delete(f"{BASE}/{upload['upload_id']}").status_code == 204
    assert runtime.blobs.head(upload["s3_key"]) is None
    record = client.get(f"{BASE}/{upload['upload_id']}").json()
    assert record["status"] == "CANCELED"
    assert "CANCELED" in assert_error(client.post(f"{BASE}/{upload['upload_id']}/confirm"), 400)["error"]["message"]

    kept = create(client, filename="kept.txt")
    put(client, kept["presigned_url"], b"stays", "text/plain")
    assert client.delete(f"{BASE}/{kept['upload_id']}", params={"delete_s3_object": False}).status_code == 204
    assert runtime.blobs.head(kept["s3_key"]) is not None
    assert_error(client.get(f"{BASE}/upl_doesnotexist00"), 404, "NotFoundError")


def test_deleting_the_bucket_removes_upload_bytes(client: TestClient, bucket: dict[str, Any], runtime: Runtime) -> None:
    confirmed_upload, _ = upload_and_confirm(client, b"kept by an object")
    pending = create(client, filename="pending.txt")
    put(client, pending["presigned_url"], b"never confirmed", "text/plain")
    task = client.delete("/v1/buckets/files").json()
    assert wait_task(client, task["task_id"])["status"] == "COMPLETED"
    assert runtime.blobs.head(confirmed_upload["s3_key"]) is None
    assert runtime.blobs.head(pending["s3_key"]) is None


def test_confirm_with_auto_submit_batch_processes_the_object_once(client: TestClient, bucket: dict[str, Any]) -> None:
    source = {"type": "bucket", "bucket_ids": [bucket["bucket_id"]]}
    collection = text_collection(client, "notes", source, split_by="sentences", chunk_size=1)["collection_id"]
    data = b"Cats purr softly. Dogs bark loudly."
    upload = create(client)
    stored = put(client, upload["presigned_url"], data, upload["content_type"])
    url = f"{BASE}/{upload['upload_id']}/confirm"
    first = client.post(url, json={"etag": stored.headers["ETag"], "auto_submit_batch": True}).json()
    assert first["status"] == "COMPLETED" and first["batch_id"].startswith("btch_"), first
    again = client.post(url, json={"auto_submit_batch": True}).json()
    assert (again["batch_id"], again["task_id"]) == (first["batch_id"], first["task_id"])  # idempotent
    assert client.post(url, json={}).json().get("batch_id") is None  # not asked for: not told
    assert wait_task(client, first["task_id"])["status"] == "COMPLETED"
    [batch] = client.post("/v1/buckets/files/batches/list", json={}).json()["results"]
    assert batch["batch_id"] == first["batch_id"] and batch["status"] == "COMPLETED"
    assert batch["object_ids"] == [first["object_id"]]
    docs = client.post(f"/v1/collections/{collection}/documents/list", json={}).json()
    assert len(docs["results"]) == 2
