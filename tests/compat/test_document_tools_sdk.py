"""Document count, distinct values, ancestors, descendants, media download, diagnostics and schema
checks through the official SDK: its response models must accept what the server returns."""

from __future__ import annotations

import urllib.request

import mixpeek
import pytest
from mixpeek import BucketObjectsApi, BucketsApi, CollectionDocumentsApi, CollectionsApi, NamespacesApi
from mixpeek.models import (
    BucketCreateRequest,
    BucketSchemaFieldInput,
    BucketSchemaFieldType,
    BucketSchemaInput,
    CreateBlobRequest,
    CreateCollectionRequest,
    CreateNamespaceRequest,
    CreateObjectRequest,
    Data,
    DistinctValuesRequest,
    DocumentCreateRequest,
)

from tests.compat.conftest import use_namespace

pytestmark = pytest.mark.compat


def _collection(sdk: mixpeek.ApiClient, name: str, source: dict[str, object], mapping: str) -> str:
    request = CreateCollectionRequest.from_dict(
        {
            "collection_name": name,
            "source": source,
            "feature_extractor": {
                "feature_extractor_name": "text_extractor",
                "version": "v1",
                "input_mappings": {"text": mapping},
                "parameters": {"extractor_type": "text_extractor"},
            },
        }
    )
    return str(CollectionsApi(sdk).create_collection(request).collection_id)


def test_document_tools_through_sdk(sdk: mixpeek.ApiClient) -> None:
    ns = NamespacesApi(sdk).create_namespace(CreateNamespaceRequest(namespace_name="sdk_document_tools"))
    use_namespace(sdk, ns.namespace_id)
    bucket = BucketsApi(sdk).create_bucket(
        BucketCreateRequest(
            bucket_name="notes",
            bucket_schema=BucketSchemaInput(
                properties={"content": BucketSchemaFieldInput(type=BucketSchemaFieldType.TEXT)}
            ),
        )
    )
    obj = BucketObjectsApi(sdk).create_object_buckets(
        bucket.bucket_id,
        CreateObjectRequest(
            blobs=[CreateBlobRequest(var_property="content", type=BucketSchemaFieldType.TEXT, data=Data("Low tide."))]
        ),
    )
    notes = _collection(sdk, "notes_whole", {"type": "bucket", "bucket_ids": [bucket.bucket_id]}, "content")
    parts = _collection(sdk, "notes_parts", {"type": "collection", "collection_id": notes}, "text")

    documents = CollectionDocumentsApi(sdk)
    assert documents.count_documents(notes).count == 0
    lineage = {"root_object_id": obj.object_id, "source_object_id": obj.object_id}
    parent = documents.create_document(
        notes, DocumentCreateRequest(source_type="bucket", metadata={"mood": "calm"}, **lineage)
    ).document_id
    children = [
        documents.create_document(
            parts,
            DocumentCreateRequest(
                source_type="collection",
                source_document_id=parent,
                source_collection_id=notes,
                metadata={"mood": mood},
                **lineage,
            ),
        ).document_id
        for mood in ("calm", "calm", "rough")
    ]

    counted = documents.count_documents(parts)
    assert (counted.collection_id, counted.count) == (parts, 3)
    distinct = documents.distinct_document_values(parts, DistinctValuesRequest(var_field="metadata.mood", limit=5))
    assert distinct.var_field == "metadata.mood" and distinct.total_distinct == 2
    assert [(v.value, v.count) for v in distinct.values] == [("calm", 2), ("rough", 1)]

    ancestors = documents.get_document_ancestors(parts, children[0])
    assert [(d.document_id, d.collection_id) for d in ancestors] == [(parent, notes)]
    descendants = documents.get_document_descendants(notes, parent)
    assert [d.document_id for d in descendants] == children
    assert descendants[0].internal.lineage.source_document_id == parent

    download = documents.download_document_media(parts, children[2])
    assert download.cached is True and download.start_time == 0 and download.end_time == 0
    with urllib.request.urlopen(download.download_url, timeout=10) as response:
        assert response.read() == b"Low tide."

    diagnostics = documents.get_document_diagnostics(parts, children[0])
    assert diagnostics.source_object_id == obj.object_id
    assert diagnostics.visibility_reason.searchable is False  # written without vectors
    assert diagnostics.recent_failures.failures == [] and obj.object_id in diagnostics.recent_failures.reason
    assert [e.source for e in diagnostics.diagnostic_history.entries] == ["ingestion_status"]

    checked = documents.validate_document_schema(parts, {"text": 7, "chunk_index": 1})
    assert checked["valid"] is False and [v["field"] for v in checked["violations"]] == ["text"]
    assert documents.count_documents(parts).count == 3  # the check wrote nothing

    with pytest.raises(mixpeek.exceptions.NotFoundException):
        documents.get_document_ancestors(parts, "doc_missing")
