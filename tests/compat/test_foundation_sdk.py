"""Namespaces, buckets, objects and tasks driven through the official SDK's generated client."""

from __future__ import annotations

import json
import time

import mixpeek
import pytest
from mixpeek import BucketObjectsApi, BucketsApi, HealthApi, NamespacesApi, TasksApi
from mixpeek.models import (
    BaseFeatureExtractorModelInput,
    BucketCreateRequest,
    BucketSchemaFieldInput,
    BucketSchemaFieldType,
    BucketSchemaInput,
    BucketUpdateRequest,
    CreateBlobRequest,
    CreateNamespaceRequest,
    CreateObjectRequest,
    CreateObjectsBatchRequest,
    Data,
    ListBucketsRequest,
    ListNamespacesRequest,
    ListObjectsRequest,
    ListTasksRequest,
    PatchNamespaceRequest,
)

from tests.compat.conftest import use_namespace

pytestmark = pytest.mark.compat


def _namespace(sdk: mixpeek.ApiClient, name: str) -> str:
    ns = NamespacesApi(sdk).create_namespace(
        CreateNamespaceRequest(
            namespace_name=name,
            feature_extractors=[BaseFeatureExtractorModelInput(feature_extractor_name="text_extractor", version="v1")],
        )
    )
    assert ns.namespace_name == name and ns.namespace_id.startswith("ns_")
    use_namespace(sdk, ns.namespace_id)
    return ns.namespace_id


def _bucket(sdk: mixpeek.ApiClient, name: str = "docs") -> str:
    bucket = BucketsApi(sdk).create_bucket(
        BucketCreateRequest(
            bucket_name=name,
            bucket_schema=BucketSchemaInput(
                properties={
                    "content": BucketSchemaFieldInput(type=BucketSchemaFieldType.TEXT),
                    "title": BucketSchemaFieldInput(type=BucketSchemaFieldType.STRING),
                }
            ),
        )
    )
    assert bucket.bucket_name == name and bucket.object_count == 0
    return str(bucket.bucket_id)


def _wait(sdk: mixpeek.ApiClient, task_id: str) -> str:
    for _ in range(200):
        status = TasksApi(sdk).get_task(task_id).status.value
        if status in ("COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELED"):
            return str(status)
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish")


def test_health_needs_no_key(sdk: mixpeek.ApiClient) -> None:
    sdk.configuration.access_token = None
    try:
        assert HealthApi(sdk).healthcheck_health()["status"] == "OK"
    finally:
        from tests.live import API_KEY

        sdk.configuration.access_token = API_KEY


def test_namespaces_through_sdk(sdk: mixpeek.ApiClient) -> None:
    api = NamespacesApi(sdk)
    ns_id = _namespace(sdk, "sdk_ns")
    assert api.get_namespace("sdk_ns").namespace_id == ns_id
    assert api.get_namespace(ns_id).feature_extractors[0].feature_extractor_id == "text_extractor_v1"
    listed = api.list_namespaces(list_namespaces_request=ListNamespacesRequest(search="sdk_"))
    assert listed.total_count >= 1 and any(n.namespace_id == ns_id for n in listed.results)
    _namespace(sdk, "sdk_other")
    by_name = ListNamespacesRequest(search="sdk_", sorts=[{"field": "namespace_name", "direction": "asc"}])
    assert [n.namespace_name for n in api.list_namespaces(list_namespaces_request=by_name).results] == [
        "sdk_ns",
        "sdk_other",
    ]
    patched = api.patch_namespace(ns_id, PatchNamespaceRequest(description="patched"))
    assert patched.description == "patched"
    with pytest.raises(mixpeek.exceptions.ConflictException) as conflict:
        _namespace(sdk, "sdk_ns")
    # 409 is not among the codes the SDK parses for this operation; the raw body is our envelope.
    assert json.loads(conflict.value.body)["error"]["type"] == "AlreadyExistsError"


def test_buckets_objects_and_tasks_through_sdk(sdk: mixpeek.ApiClient) -> None:
    _namespace(sdk, "sdk_objects")
    bucket_id = _bucket(sdk)
    buckets, objects = BucketsApi(sdk), BucketObjectsApi(sdk)
    assert buckets.get_bucket("docs").bucket_id == bucket_id
    assert buckets.list_buckets(list_buckets_request=ListBucketsRequest()).total_count == 1
    _bucket(sdk, "archive")
    sorted_page = buckets.list_buckets(
        list_buckets_request=ListBucketsRequest(sorts=[{"field": "bucket_name", "direction": "asc"}], page_size=1)
    )
    assert [b.bucket_name for b in sorted_page.results] == ["archive"] and sorted_page.total_count == 2
    renamed = buckets.update_bucket(bucket_id, BucketUpdateRequest(description="texts"))
    assert renamed.description == "texts"

    created = objects.create_object_buckets(
        bucket_id,
        CreateObjectRequest(
            blobs=[CreateBlobRequest(var_property="content", type=BucketSchemaFieldType.TEXT, data=Data("hello sdk"))],
            additional_properties={"metadata": {"title": "Hello"}},
        ),
    )
    assert created.object_id.startswith("obj_") and created.status.value == "DRAFT"
    assert created.blobs[0].type == BucketSchemaFieldType.TEXT and created.blobs[0].details.size_bytes == 9
    assert created.additional_properties["metadata"] == {"title": "Hello"}
    assert created.source_details[0].source_id == bucket_id

    batch = objects.create_objects_batch_buckets(
        bucket_id,
        CreateObjectsBatchRequest.from_dict(
            {
                "objects": [{"blobs": [{"property": "content", "type": "text", "data": f"item {i}"}]} for i in range(3)]
                + [{"blobs": [{"property": "nope", "type": "text", "data": "x"}]}]
            }
        ),
    )
    assert (batch.succeeded_count, batch.failed_count, batch.total_requested) == (3, 1, 4)
    assert batch.failed[0].object_index == 3

    fetched = objects.get_object_buckets(bucket_id, created.object_id, return_presigned_urls=True)
    assert fetched.blobs[0].properties["presigned_url"].startswith("http")
    page = objects.list_objects_buckets(bucket_id, limit=2, list_objects_request=ListObjectsRequest())
    assert len(page.results) == 2 and page.pagination.next_cursor
    assert all("presigned_url" not in o.blobs[0].properties for o in page.results)
    signed = objects.list_objects_buckets(
        bucket_id, list_objects_request=ListObjectsRequest(return_presigned_urls=True)
    )
    assert all(o.blobs[0].properties["presigned_url"].startswith("http") for o in signed.results)
    rest = objects.list_objects_buckets(bucket_id, cursor=page.pagination.next_cursor, limit=10)
    assert len(rest.results) == 2
    objects.delete_object_buckets(bucket_id, created.object_id)
    with pytest.raises(mixpeek.exceptions.NotFoundException):
        objects.get_object_buckets(bucket_id, created.object_id)

    deletion = buckets.delete_bucket(bucket_id)
    assert _wait(sdk, deletion["task_id"]) == "COMPLETED"
    task = TasksApi(sdk).get_task(deletion["task_id"])
    assert task.task_type.value == "api_buckets_delete"
    listed = TasksApi(sdk).list_tasks(list_tasks_request=ListTasksRequest(task_type="api_buckets_delete"))
    assert any(t.task_id == deletion["task_id"] for t in listed.results)
    killed = TasksApi(sdk).kill_task(deletion["task_id"])
    assert killed.success is True
    assert TasksApi(sdk).get_task(deletion["task_id"]).status.value == "COMPLETED"
