"""Presigned uploads driven through the official SDK's BucketUploadsApi against a live server."""

from __future__ import annotations

import hashlib
import json
import secrets
import time

import mixpeek
import pytest
import urllib3
from mixpeek import (
    BucketBatchesApi,
    BucketObjectsApi,
    BucketsApi,
    BucketUploadsApi,
    CollectionsApi,
    NamespacesApi,
    TasksApi,
)
from mixpeek.models import (
    BaseFeatureExtractorModelInput,
    BatchConfirmRequest,
    BatchUploadRequest,
    BucketCreateRequest,
    BucketSchemaFieldInput,
    BucketSchemaFieldType,
    BucketSchemaInput,
    ConfirmUploadRequest,
    CreateCollectionRequest,
    CreateNamespaceRequest,
    CreateUploadRequest,
    ListUploadsRequest,
)

from tests.compat.conftest import use_namespace

pytestmark = pytest.mark.compat
http = urllib3.PoolManager()


@pytest.fixture
def bucket_id(sdk: mixpeek.ApiClient) -> str:
    name = f"uploads_{secrets.token_hex(4)}"
    ns = NamespacesApi(sdk).create_namespace(
        CreateNamespaceRequest(
            namespace_name=name,
            feature_extractors=[BaseFeatureExtractorModelInput(feature_extractor_name="text_extractor", version="v1")],
        )
    )
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
    return str(bucket.bucket_id)


def _wait(sdk: mixpeek.ApiClient, task_id: str) -> mixpeek.TaskResponse:
    for _ in range(400):
        task = TasksApi(sdk).get_task(task_id)
        if task.status.value in ("COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELED"):
            return task
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish")


def test_create_put_confirm_through_sdk(sdk: mixpeek.ApiClient, bucket_id: str) -> None:
    uploads = BucketUploadsApi(sdk)
    payload = b"hello mixpeek"
    up = uploads.create_upload_buckets(
        bucket_id,
        CreateUploadRequest(
            filename="hello.txt",
            content_type="text/plain",
            file_size_bytes=len(payload),
            file_hash=hashlib.sha256(payload).hexdigest(),
            skip_duplicates=True,
            blob_property="content",
            blob_type="text",
            create_object_on_confirm=True,
            object_metadata={"title": "Hello"},
        ),
    )
    assert up.status.value == "PENDING" and up.presigned_url and up.presigned_url_expiration == 3600
    put = http.request("PUT", up.presigned_url, body=payload, headers={"Content-Type": up.content_type})
    assert put.status == 200 and put.headers["ETag"] == f'"{hashlib.md5(payload).hexdigest()}"'
    conf = uploads.confirm_upload_buckets(
        bucket_id,
        up.upload_id,
        confirm_upload_request=ConfirmUploadRequest(etag=put.headers.get("ETag"), file_size_bytes=len(payload)),
    )
    assert conf.status.value == "COMPLETED" and conf.object_id.startswith("obj_") and conf.batch_id is None
    unprocessed = uploads.confirm_upload_buckets(
        bucket_id, up.upload_id, confirm_upload_request=ConfirmUploadRequest(auto_submit_batch=True)
    )
    assert unprocessed.batch_id is None and "no collection processes this bucket" in unprocessed.message
    collection = CollectionsApi(sdk).create_collection(
        CreateCollectionRequest.from_dict(
            {
                "collection_name": "hello_chunks",
                "source": {"type": "bucket", "bucket_ids": [bucket_id]},
                "feature_extractor": {
                    "feature_extractor_name": "text_extractor",
                    "version": "v1",
                    "input_mappings": {"text": "content"},
                },
            }
        )
    )
    submitted = uploads.confirm_upload_buckets(
        bucket_id, up.upload_id, confirm_upload_request=ConfirmUploadRequest(auto_submit_batch=True)
    )
    assert submitted.batch_id.startswith("btch_") and _wait(sdk, submitted.task_id).status.value == "COMPLETED"
    repeated = uploads.confirm_upload_buckets(
        bucket_id, up.upload_id, confirm_upload_request=ConfirmUploadRequest(auto_submit_batch=True)
    )
    assert repeated.batch_id == submitted.batch_id
    assert (
        collection.collection_id
        in BucketBatchesApi(sdk).get_batch_buckets_batches(bucket_id, submitted.batch_id).collection_ids
    )

    obj = BucketObjectsApi(sdk).get_object_buckets(bucket_id, conf.object_id)
    assert obj.blobs[0].var_property == "content" and obj.blobs[0].details.size_bytes == len(payload)
    assert obj.additional_properties["metadata"] == {"title": "Hello"}

    dup = uploads.create_upload_buckets(
        bucket_id,
        CreateUploadRequest(
            filename="again.txt",
            content_type="text/plain",
            file_hash=hashlib.sha256(payload).hexdigest(),
            blob_property="content",
        ),
    )
    assert dup.is_duplicate and dup.presigned_url is None and dup.object_id == conf.object_id

    record = uploads.get_upload_buckets(bucket_id, up.upload_id, return_presigned_urls=True)
    assert record["status"] == "COMPLETED" and http.request("GET", record["presigned_url"]).data == payload
    listed = uploads.list_uploads_buckets(bucket_id, list_uploads_request=ListUploadsRequest())
    assert listed.stats.total_uploads == 1 and listed.stats.uploads_by_status == {"COMPLETED": 1}
    assert listed.results[0].upload_id == up.upload_id

    with pytest.raises(mixpeek.exceptions.BadRequestException) as refused:
        uploads.delete_upload_buckets(bucket_id, up.upload_id)
    assert json.loads(refused.value.body)["error"]["type"] == "BadRequestError"


def test_batch_create_put_batch_confirm_through_sdk(sdk: mixpeek.ApiClient, bucket_id: str) -> None:
    uploads = BucketUploadsApi(sdk)
    many = uploads.create_uploads_batch_buckets(
        bucket_id,
        BatchUploadRequest(
            uploads=[
                CreateUploadRequest(filename=f"f{i}.txt", content_type="text/plain", blob_property="content")
                for i in range(3)
            ],
            shared_object_metadata={"title": "batch"},
        ),
    )
    assert many.total == 3
    confirms = []
    for i, upload in enumerate(many.uploads):
        body = f"item {i}".encode()
        put = http.request("PUT", upload.presigned_url, body=body, headers={"Content-Type": upload.content_type})
        assert put.status == 200
        confirms.append({"upload_id": upload.upload_id, "etag": put.headers.get("ETag"), "file_size_bytes": len(body)})
    answer = uploads.confirm_uploads_batch_buckets(bucket_id, BatchConfirmRequest(confirmations=confirms))
    assert answer.confirmations_count == 3 and answer.task.task_type.value == "api_buckets_uploads_batch_confirm"
    task = _wait(sdk, answer.task_id)
    assert task.status.value == "COMPLETED"
    object_ids = [o.actual_instance["object_id"] for o in task.outputs]  # outputs are str | object
    objects = BucketObjectsApi(sdk)
    assert len(set(object_ids)) == 3
    assert all(
        objects.get_object_buckets(bucket_id, oid).additional_properties["metadata"] == {"title": "batch"}
        for oid in object_ids
    )


def test_bad_input_through_sdk(sdk: mixpeek.ApiClient, bucket_id: str) -> None:
    uploads = BucketUploadsApi(sdk)
    with pytest.raises(mixpeek.exceptions.BadRequestException) as traversal:
        uploads.create_upload_buckets(
            bucket_id,
            CreateUploadRequest(filename="../../etc/passwd", content_type="text/plain", blob_property="content"),
        )
    assert traversal.value.data.error.type == "BadRequestError"

    up = uploads.create_upload_buckets(
        bucket_id, CreateUploadRequest(filename="a.txt", content_type="text/plain", blob_property="content")
    )
    wrong_type = http.request("PUT", up.presigned_url, body=b"#!/bin/sh", headers={"Content-Type": "text/x-sh"})
    assert wrong_type.status == 403 and json.loads(wrong_type.data)["error"]["type"] == "ForbiddenError"
    tampered = up.presigned_url[:-1] + ("0" if up.presigned_url[-1] != "0" else "1")
    assert http.request("PUT", tampered, body=b"x", headers={"Content-Type": "text/plain"}).status == 403
    with pytest.raises(mixpeek.exceptions.BadRequestException) as missing:
        uploads.confirm_upload_buckets(bucket_id, up.upload_id)
    assert "PUT the file" in missing.value.data.error.message

    put = http.request("PUT", up.presigned_url, body=b"abc", headers={"Content-Type": "text/plain"})
    with pytest.raises(mixpeek.exceptions.BadRequestException) as etag:
        uploads.confirm_upload_buckets(
            bucket_id,
            up.upload_id,
            confirm_upload_request=ConfirmUploadRequest(etag='"ffffffffffffffffffffffffffffffff"'),
        )
    assert etag.value.data.error.details["mismatches"]["etag"]["stored"] == put.headers["ETag"].strip('"')
    with pytest.raises(mixpeek.exceptions.BadRequestException):
        uploads.confirm_upload_buckets(
            bucket_id, up.upload_id, confirm_upload_request=ConfirmUploadRequest(file_size_bytes=4)
        )
    too_many = BatchConfirmRequest.model_construct(confirmations=[{"upload_id": up.upload_id}] * 101)
    with pytest.raises(mixpeek.exceptions.UnprocessableEntityException):
        uploads.confirm_uploads_batch_buckets(bucket_id, too_many)
    ok = uploads.confirm_upload_buckets(bucket_id, up.upload_id, var_async=True)
    assert ok.status.value in ("PROCESSING", "COMPLETED") and _wait(sdk, ok.task_id).status.value == "COMPLETED"
