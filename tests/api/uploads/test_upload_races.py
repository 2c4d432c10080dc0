"""Concurrent requests on one upload, from real threads, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from strataflow.runtime import Runtime
from strataflow.store.tables import BucketObject, StatusEvent
from tests.api.uploads.conftest import create, put

BASE = "/v1/buckets/files/uploads"
THREADS = 8


@pytest.fixture
def blob_backend() -> str:
    return "local"


def _all_at_once(call: Any) -> list[httpx.Response]:
    barrier = threading.Barrier(THREADS)

    def run(_: int) -> httpx.Response:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(run, range(THREADS)))


def _count_objects(runtime: Runtime) -> int:
    with runtime.db.read_session() as session:
        return int(session.scalar(select(func.count()).select_from(BucketObject)) or 0)


def _completions(runtime: Runtime, upload_id: str) -> int:
    with runtime.db.read_session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(StatusEvent)
                .where(StatusEvent.entity_id == upload_id, StatusEvent.to_status == "COMPLETED")
            )
            or 0
        )


def test_concurrent_confirms_create_exactly_one_object(
    client: TestClient, bucket: dict[str, Any], runtime: Runtime
) -> None:
    upload = create(client)
    stored = put(client, upload["presigned_url"], b"raced bytes", "text/plain")
    url = f"{BASE}/{upload['upload_id']}/confirm"
    answers = _all_at_once(lambda: client.post(url, json={"etag": stored.headers["ETag"]}))
    assert [a.status_code for a in answers] == [200] * THREADS, [a.text for a in answers]
    assert len({a.json()["object_id"] for a in answers}) == 1
    assert _count_objects(runtime) == 1
    assert _completions(runtime, upload["upload_id"]) == 1


def test_concurrent_multipart_confirms_join_once(client: TestClient, bucket: dict[str, Any], runtime: Runtime) -> None:
    part = 5 * 1024 * 1024
    data = b"a" * part + b"b" * 1000
    upload = create(client, filename="v.mp4", content_type="video/mp4", blob_property="clip", file_size_bytes=len(data))
    plan = client.post(f"{BASE}/{upload['upload_id']}/multipart", json={"part_size_bytes": part}).json()
    for item in plan["parts"]:
        start = (item["part_number"] - 1) * part
        assert put(client, item["presigned_url"], data[start : start + item["size_bytes"]], None).status_code == 200
    answers = _all_at_once(lambda: client.post(f"{BASE}/{upload['upload_id']}/confirm", json={}))
    assert [a.status_code for a in answers] == [200] * THREADS, [a.text for a in answers]
    assert len({a.json()["object_id"] for a in answers}) == 1
    assert {a.json()["etag"] for a in answers} == {answers[0].json()["etag"]}
    assert _count_objects(runtime) == 1


def test_one_upload_backs_one_object_under_contention(
    client: TestClient, bucket: dict[str, Any], runtime: Runtime
) -> None:
    upload = create(client, create_object_on_confirm=False)
    put(client, upload["presigned_url"], b"contended", "text/plain")
    assert client.post(f"{BASE}/{upload['upload_id']}/confirm", json={}).status_code == 200
    body = {"blobs": [{"property": "content", "type": "text", "upload_id": upload["upload_id"]}]}
    answers = _all_at_once(lambda: client.post("/v1/buckets/files/objects", json=body))
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] + [409] * (THREADS - 1), [a.text for a in answers]
    assert _count_objects(runtime) == 1
