"""Clone and reconciliation through the official SDK: its response models validate what the server returns."""

from __future__ import annotations

import time

import mixpeek
import pytest
from mixpeek import BucketObjectsApi, BucketsApi, CollectionsApi, NamespacesApi, TasksApi
from mixpeek.models import (
    BucketCreateRequest,
    BucketSchemaFieldInput,
    BucketSchemaFieldType,
    BucketSchemaInput,
    CloneCollectionRequest,
    CreateBlobRequest,
    CreateCollectionRequest,
    CreateNamespaceRequest,
    CreateObjectRequest,
    Data,
    FieldPassthrough,
    InputMappings,
    Parameters,
    ReconciliationReason,
    SourceConfigInput,
    SourceType,
    TextExtractorParams,
    TriggerCollectionRequest,
)
from mixpeek.models import (
    SharedCollectionFeaturesExtractorsModelsFeatureExtractorConfigInput as FeatureExtractorConfig,
)

from tests.compat.conftest import use_namespace

pytestmark = pytest.mark.compat
TERMINAL = ("COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELED")


def _wait(sdk: mixpeek.ApiClient, task_id: str) -> str:
    for _ in range(1200):
        status = TasksApi(sdk).get_task(task_id).status.value
        if status in TERMINAL:
            return str(status)
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} did not finish")


def test_clone_and_reconciliation_through_sdk(sdk: mixpeek.ApiClient) -> None:
    ns = NamespacesApi(sdk).create_namespace(CreateNamespaceRequest(namespace_name="sdk_clone"))
    use_namespace(sdk, ns.namespace_id)
    text = BucketSchemaFieldInput(type=BucketSchemaFieldType.TEXT)
    title = BucketSchemaFieldInput(type=BucketSchemaFieldType.STRING)
    bucket = BucketsApi(sdk).create_bucket(
        BucketCreateRequest(
            bucket_name="notes", bucket_schema=BucketSchemaInput(properties={"content": text, "title": title})
        )
    )
    objects = BucketObjectsApi(sdk)
    with_text = objects.create_object_buckets(
        bucket.bucket_id,
        CreateObjectRequest(
            blobs=[CreateBlobRequest(var_property="content", type=BucketSchemaFieldType.TEXT, data=Data("One. Two."))]
        ),
    )
    textless = objects.create_object_buckets(
        bucket.bucket_id, CreateObjectRequest(blobs=[], additional_properties={"metadata": {"title": "empty"}})
    )

    collections = CollectionsApi(sdk)
    original = collections.create_collection(
        CreateCollectionRequest(
            collection_name="notes_sentences",
            source=SourceConfigInput(type=SourceType.BUCKET, bucket_ids=[bucket.bucket_id]),
            feature_extractor=FeatureExtractorConfig(
                feature_extractor_name="text_extractor",
                version="v1",
                input_mappings=InputMappings({"text": "content"}),
                field_passthrough=[FieldPassthrough(source_path="title")],
                parameters=Parameters(TextExtractorParams(split_by="sentences", chunk_size=1)),
            ),
            metadata={"stage": "prod"},
        )
    )

    cloned = collections.clone_collection(
        "notes_sentences", CloneCollectionRequest(collection_name="notes_sentences_v2", enabled=False)
    )
    assert cloned.source_collection_id == original.collection_id
    clone = cloned.collection
    assert clone.collection_id != original.collection_id and clone.collection_name == "notes_sentences_v2"
    assert (clone.enabled, clone.metadata, clone.document_count) == (False, {"stage": "prod"}, 0)
    assert clone.source.bucket_ids == [bucket.bucket_id]
    assert clone.feature_extractor.field_passthrough[0].source_path == "title"
    assert isinstance(clone.feature_extractor.parameters.actual_instance, TextExtractorParams)
    with pytest.raises(mixpeek.exceptions.ApiException) as refused:
        collections.clone_collection("notes_sentences", CloneCollectionRequest(collection_name="notes_sentences_v2"))
    assert refused.value.status == 409

    triggered = collections.trigger_collection(original.collection_id, TriggerCollectionRequest())
    assert _wait(sdk, triggered.task_id) == "COMPLETED"

    report = collections.reconcile_collection_reconciliation(original.collection_id, limit=5)
    assert report.collection_id == original.collection_id
    assert (report.source_object_count, report.produced_object_count, report.document_count) == (2, 1, 2)
    assert (report.delta, report.discrepancies_truncated, report.limit) == (1, False, 5)
    [missing] = report.discrepancies or []
    assert (missing.object_id, missing.bucket_id) == (textless.object_id, bucket.bucket_id)
    assert missing.reason == ReconciliationReason.NO_DOCUMENT
    assert with_text.object_id not in {d.object_id for d in report.discrepancies or []}
    untouched = collections.reconcile_collection_reconciliation(clone.collection_id)
    assert (untouched.source_object_count, untouched.delta, untouched.discrepancies) == (0, 0, [])
