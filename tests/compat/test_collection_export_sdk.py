"""Collection export through the official SDK: its CollectionExportResponse must accept what the
server returns, and the files behind its presigned URLs must hold the documents."""

from __future__ import annotations

import io
import json
import tarfile
import urllib.request

import mixpeek
import pyarrow.parquet as pq
import pytest
from mixpeek import BucketsApi, CollectionDocumentsApi, CollectionsApi, NamespacesApi
from mixpeek.models import (
    BucketCreateRequest,
    CollectionExportRequest,
    CreateCollectionRequest,
    CreateNamespaceRequest,
    DocumentCreateRequest,
    ExportFormat,
)

from tests.compat.conftest import use_namespace

pytestmark = pytest.mark.compat


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def test_export_through_sdk(sdk: mixpeek.ApiClient) -> None:
    ns = NamespacesApi(sdk).create_namespace(CreateNamespaceRequest(namespace_name="sdk_export"))
    use_namespace(sdk, ns.namespace_id)
    bucket = (
        BucketsApi(sdk)
        .create_bucket(
            BucketCreateRequest.from_dict(
                {"bucket_name": "sea", "bucket_schema": {"properties": {"content": {"type": "text"}}}}
            )
        )
        .bucket_id
    )
    collections = CollectionsApi(sdk)
    collection = collections.create_collection(
        CreateCollectionRequest.from_dict(
            {
                "collection_name": "tides",
                "source": {"type": "bucket", "bucket_ids": [bucket]},
                "feature_extractor": {
                    "feature_extractor_name": "text_extractor",
                    "version": "v1",
                    "input_mappings": {"text": "content"},
                    "parameters": {"extractor_type": "text_extractor"},
                },
            }
        )
    ).collection_id
    documents = CollectionDocumentsApi(sdk)
    ids = {
        mood: documents.create_document(collection, DocumentCreateRequest(metadata={"mood": mood})).document_id
        for mood in ("calm", "rough", "still")
    }

    parquet = collections.export_collection(collection)  # no body: every document, as Parquet
    assert parquet.format == ExportFormat.PARQUET and parquet.document_count == 3
    assert parquet.vectors_download_url is None and parquet.exported_at.tzinfo is not None
    data = _download(parquet.download_url)
    assert parquet.file_size_bytes == len(data)
    table = pq.read_table(io.BytesIO(data))
    moods = {r["document_id"]: json.loads(r["metadata"])["mood"] for r in table.to_pylist()}
    assert moods == {doc_id: mood for mood, doc_id in ids.items()}

    lines = collections.export_collection(
        collection,
        CollectionExportRequest.from_dict(
            {
                "format": "json",
                "select_fields": ["metadata.mood"],
                "filters": {"field": "metadata.mood", "operator": "in", "value": ["calm", "still"]},
                "include_lineage": True,
                "include_vectors": True,
            }
        ),
    )
    assert lines.format == ExportFormat.JSON and lines.document_count == 2
    rows = [json.loads(line) for line in _download(lines.download_url).decode().splitlines()]
    assert sorted(r["metadata.mood"] for r in rows) == ["calm", "still"]
    assert all(r["lineage_chain"] == [] and r["source_content_hash"] is None for r in rows)  # made by the API
    assert lines.vectors_download_url and lines.vectors_s3_path and lines.vectors_s3_path.endswith("vectors.parquet")
    vectors = pq.read_table(io.BytesIO(_download(lines.vectors_download_url)))
    assert vectors.num_rows == 2 and vectors.column_names[0] == "document_id"
    assert vectors.column(1).null_count == 2  # documents written without vectors

    shards = collections.export_collection(
        collection,
        CollectionExportRequest(format=ExportFormat.WEBDATASET, samples_per_shard=2, include_media=True),
    )
    assert shards.format == ExportFormat.WEBDATASET and shards.document_count == 3 and shards.shard_count == 2
    assert shards.shard_pattern == "documents-{000000..000001}.tar"
    assert [(s.filename, s.sample_count) for s in shards.shards or []] == [
        ("documents-000000.tar", 2),
        ("documents-000001.tar", 1),
    ]
    assert shards.media is not None and shards.media.samples_without_media == 3  # no source objects
    with tarfile.open(fileobj=io.BytesIO(_download(shards.shards[1].download_url))) as tar:
        names = [m.name for m in tar.getmembers()]
    assert len(names) == 1 and names[0].removesuffix(".json") in ids.values()

    with pytest.raises(mixpeek.exceptions.BadRequestException):
        collections.export_collection(
            collection, CollectionExportRequest.from_dict({"destination": {"connection_id": "conn_x"}})
        )
