"""Batches through the SDK's BucketBatchesApi and TasksApi, against a live server."""

from __future__ import annotations

import time

import mixpeek
import pytest
from mixpeek import (
    BucketBatchesApi,
    BucketObjectsApi,
    BucketsApi,
    CollectionDocumentsApi,
    CollectionsApi,
    NamespacesApi,
    TasksApi,
)
from mixpeek.models import (
    AddObjectsToBatchRequest,
    BucketCreateRequest,
    BucketSchemaFieldInput,
    BucketSchemaFieldType,
    BucketSchemaInput,
    CreateBatchRequest,
    CreateBlobRequest,
    CreateCollectionRequest,
    CreateNamespaceRequest,
    CreateObjectRequest,
    Data,
    FieldPassthrough,
    InputMappings,
    ListBatchesRequest,
    ListDocumentsRequest,
    Parameters,
    PatchBatchRequest,
    SourceConfigInput,
    SourceType,
    SubmitBatchRequest,
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


def _world(sdk: mixpeek.ApiClient) -> tuple[str, str, list[str]]:
    ns = NamespacesApi(sdk).create_namespace(CreateNamespaceRequest(namespace_name="sdk_batches"))
    use_namespace(sdk, ns.namespace_id)
    bucket = BucketsApi(sdk).create_bucket(
        BucketCreateRequest(
            bucket_name="docs",
            bucket_schema=BucketSchemaInput(
                properties={
                    "content": BucketSchemaFieldInput(type=BucketSchemaFieldType.TEXT),
                    "title": BucketSchemaFieldInput(type=BucketSchemaFieldType.STRING),
                }
            ),
        )
    )
    objects = BucketObjectsApi(sdk)
    object_ids = [
        objects.create_object_buckets(
            bucket.bucket_id,
            CreateObjectRequest(
                blobs=[
                    CreateBlobRequest(
                        var_property="content",
                        type=BucketSchemaFieldType.TEXT,
                        data=Data(f"First point {i}. Second point {i}."),
                    )
                ],
                additional_properties={"metadata": {"title": f"doc {i}"}},
            ),
        ).object_id
        for i in range(3)
    ]
    collection = CollectionsApi(sdk).create_collection(
        CreateCollectionRequest(
            collection_name="docs_text",
            source=SourceConfigInput(type=SourceType.BUCKET, bucket_ids=[bucket.bucket_id]),
            feature_extractor=FeatureExtractorConfig(
                feature_extractor_name="text_extractor",
                version="v1",
                input_mappings=InputMappings({"text": "content"}),
                field_passthrough=[FieldPassthrough(source_path="title")],
                parameters=Parameters(TextExtractorParams(split_by="sentences", chunk_size=1)),
            ),
        )
    )
    return str(bucket.bucket_id), str(collection.collection_id), object_ids


def test_batch_flow_through_the_sdk(sdk: mixpeek.ApiClient) -> None:
    bucket_id, collection_id, object_ids = _world(sdk)
    batches = BucketBatchesApi(sdk)
    batch = batches.create_batch_buckets_batches(bucket_id, CreateBatchRequest(object_ids=object_ids[:2]))
    assert batch.status.value == "DRAFT" and batch.max_node_death_resubmits == 3
    batch = batches.add_objects_to_batch_buckets_batches(
        bucket_id, batch.batch_id, AddObjectsToBatchRequest(object_ids=object_ids[1:])
    )
    assert batch.object_ids == object_ids
    task = batches.submit_batch_buckets_batches(
        bucket_id, batch.batch_id, submit_batch_request=SubmitBatchRequest(include_processing_history=True)
    )
    assert task.task_type.value == "api_buckets_batches_process"
    assert _wait(sdk, task.task_id) == "COMPLETED"

    done = batches.get_batch_buckets_batches(bucket_id, batch.batch_id)
    assert done.status.value == "COMPLETED" and done.total_tiers == 1 and done.current_tier == 0
    assert done.tier_tasks[0].status.value == "COMPLETED" and done.tier_tasks[0].documents_written == 6
    assert done.tier_tasks[0].source_type == "bucket" and done.dag_tiers == [[collection_id]]
    docs = CollectionDocumentsApi(sdk).list_documents(
        collection_id, list_documents_request=ListDocumentsRequest(limit=50)
    )
    assert len(docs.results) == 6
    patched = batches.patch_batch_buckets_batches(
        bucket_id, batch.batch_id, PatchBatchRequest.from_dict({"metadata": {"a": 1}})
    )
    assert patched.metadata.to_dict() == {"a": 1}
    listed = batches.list_batches_buckets(bucket_id, ListBatchesRequest(status="COMPLETED"))
    assert listed.total_count == 1 and listed.results[0].batch_id == batch.batch_id
    failed = batches.get_failed_documents_buckets_batches_batch(bucket_id, batch.batch_id, tier_num=0)
    assert failed["total"] == 0
    logs = batches.get_batch_logs_buckets_batches(bucket_id, batch.batch_id)
    assert logs["tiers"][0]["logs"]

    triggered = CollectionsApi(sdk).trigger_collection(collection_id, TriggerCollectionRequest())
    assert triggered.collection_id == collection_id and triggered.total_tiers == 1 and triggered.object_count == 3
    assert _wait(sdk, triggered.task_id) == "COMPLETED"
    again = CollectionDocumentsApi(sdk).list_documents(
        collection_id, list_documents_request=ListDocumentsRequest(limit=50)
    )
    assert len(again.results) == 6  # re-processing overwrote the same documents

    held = batches.create_batch_buckets_batches(bucket_id, CreateBatchRequest(object_ids=object_ids))
    with pytest.raises(mixpeek.exceptions.BadRequestException):
        batches.cancel_batch_buckets_batches(bucket_id, held.batch_id)
    assert batches.delete_batch_buckets_batches(bucket_id, held.batch_id).success is True
