"""Collection export on an S3 blob store (moto over HTTP): the files are S3 objects, fetched through
S3's own presigned URLs."""

from __future__ import annotations

import io
import json
import secrets
import tarfile
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from strataflow.config import Settings
from tests.api.test_collection_export import ARTICLES, VECTOR, chunks, export  # noqa: F401  (the fixture)
from tests.s3_server import MotoServer, moto_server  # noqa: F401  (the session's S3 server)


@pytest.fixture
def settings(settings: Settings, moto_server: MotoServer) -> Settings:  # noqa: F811
    bucket = f"sf-{secrets.token_hex(6)}"
    moto_server.client().create_bucket(Bucket=bucket)
    return settings.model_copy(update=moto_server.settings_for(bucket))


def download(url: str) -> bytes:
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200, response.text
    return response.content


def test_export_to_s3(client: TestClient, chunks: dict[str, Any], settings: Settings) -> None:  # noqa: F811
    bucket = str(settings.blob_url).removeprefix("s3://").split("/", 1)[0]
    answer = export(client, {"include_vectors": True, "select_fields": ["text"]})
    assert answer["s3_path"].startswith(f"s3://{bucket}/data/") and answer["s3_path"].endswith("documents.parquet")
    data = download(answer["download_url"])
    assert answer["file_size_bytes"] == len(data)
    table = pq.read_table(io.BytesIO(data))
    assert sorted(table.column("text").to_pylist()) == sorted(d["text"] for d in chunks["documents"].values())
    vectors = pq.read_table(io.BytesIO(download(answer["vectors_download_url"])))
    assert vectors.num_rows == 6 and vectors.schema.field(VECTOR).type == pa.list_(pa.float32(), 256)

    shards = export(client, {"format": "webdataset", "include_media": True, "samples_per_shard": 6})
    assert shards["s3_path"].startswith(f"s3://{bucket}/data/") and shards["s3_path"].endswith("/")
    with tarfile.open(fileobj=io.BytesIO(download(shards["shards"][0]["download_url"]))) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    assert len(members) == 12 and shards["media"]["samples_with_media"] == 6
    texts = {text.encode() for text, *_ in ARTICLES}
    assert {body for name, body in members.items() if name.endswith(".txt")} == texts
    assert all(
        json.loads(body)["document_id"] + ".json" == name for name, body in members.items() if name.endswith(".json")
    )
