"""Presigned uploads into a bucket: create, confirm, batch, list, cancel, multipart.

Handlers open their own sessions from the runtime (not the request's shared
read session): some steps first fail expired uploads, and what follows must
see that write.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from strataflow.api.deps import PageDep, RuntimeDep, ScopeDep
from strataflow.engine.lifecycle.trigger import process_upload
from strataflow.runtime import Runtime
from strataflow.schemas.common import ERROR_RESPONSES
from strataflow.schemas.uploads import (
    BATCH_CONFIRM_MESSAGE,
    BatchConfirmRequest,
    BatchConfirmResponse,
    BatchUploadRequest,
    BatchUploadResponse,
    ConfirmUploadRequest,
    ConfirmUploadResponse,
    CreateUploadRequest,
    ListUploadsRequest,
    ListUploadsResponse,
    MultipartResponse,
    OpenMultipartRequest,
    UploadResponse,
)
from strataflow.services.buckets.crud import get_bucket
from strataflow.services.tenancy.scope import NamespaceScope
from strataflow.services.tenancy.tasks import task_payload
from strataflow.services.uploads import create as upload_create
from strataflow.services.uploads import crud as uploads
from strataflow.services.uploads import multipart as upload_multipart
from strataflow.services.uploads.confirm import Claim
from strataflow.services.uploads.jobs import confirm_upload, request_batch_confirm
from strataflow.statuses import Status
from strataflow.store.tables import Bucket

router = APIRouter(prefix="/v1/buckets/{bucket_identifier}/uploads", tags=["Bucket Uploads"], responses=ERROR_RESPONSES)

AsyncFlag = Annotated[bool, Query(alias="async", description="Confirm in the background and return a task")]


def _bucket(runtime: Runtime, scope: NamespaceScope, identifier: str) -> Bucket:
    with runtime.db.read_session() as session:
        return get_bucket(session, scope, identifier)


@router.post("", response_model=UploadResponse)
def create_upload(
    bucket_identifier: str, request: CreateUploadRequest, scope: ScopeDep, runtime: RuntimeDep
) -> dict[str, Any]:
    with runtime.db.session() as session:
        bucket = get_bucket(session, scope, bucket_identifier)
        return upload_create.create_uploads(session, runtime.blobs, runtime.settings, scope, bucket, [request])[0]


@router.post("/batch", response_model=BatchUploadResponse)
def create_uploads_batch(
    bucket_identifier: str, request: BatchUploadRequest, scope: ScopeDep, runtime: RuntimeDep
) -> dict[str, Any]:
    items = [
        upload_create.merge_shared(item, request.shared_metadata, request.shared_object_metadata)
        for item in request.uploads
    ]
    with runtime.db.session() as session:
        bucket = get_bucket(session, scope, bucket_identifier)
        created = upload_create.create_uploads(session, runtime.blobs, runtime.settings, scope, bucket, items)
    return {"uploads": created, "total": len(created)}


@router.post("/list", response_model=ListUploadsResponse)
def list_uploads(
    bucket_identifier: str,
    scope: ScopeDep,
    runtime: RuntimeDep,
    page: PageDep,
    request: ListUploadsRequest | None = None,
) -> dict[str, Any]:
    request = request or ListUploadsRequest()
    # The body's limit and offset win over the query's when sent (SDKs send both).
    if "limit" in request.model_fields_set:
        page = replace(page, limit=request.limit)
    if "offset" in request.model_fields_set:
        page = replace(page, offset=request.offset)
    bucket = _bucket(runtime, scope, bucket_identifier)
    uploads.expire_overdue(runtime.db, bucket.bucket_id)
    with runtime.db.read_session() as session:
        result, stats = uploads.list_uploads(session, bucket, request, page)
        rows = [
            uploads.upload_payload(
                row, uploads.download_url(runtime.blobs, row) if request.return_presigned_urls else None
            )
            for row in result.rows
        ]
    return {"results": rows, "pagination": result.pagination, "stats": stats}


@router.post("/confirm/batch", response_model=BatchConfirmResponse)
def confirm_uploads_batch(
    bucket_identifier: str, request: BatchConfirmRequest, scope: ScopeDep, runtime: RuntimeDep
) -> dict[str, Any]:
    bucket = _bucket(runtime, scope, bucket_identifier)
    task = request_batch_confirm(runtime.jobs.context, scope, bucket, request.confirmations)
    runtime.jobs.notify()
    return {
        "task_id": task.task_id,
        "status": task.status,
        "confirmations_count": len(request.confirmations),
        "task": task_payload(task),
        "message": BATCH_CONFIRM_MESSAGE,
    }


@router.get("/{upload_id}")
def get_upload(
    bucket_identifier: str, upload_id: str, scope: ScopeDep, runtime: RuntimeDep, return_presigned_urls: bool = False
) -> dict[str, Any]:
    """The upload record. With `return_presigned_urls`, a completed upload's `presigned_url`
    is a fresh GET URL for its bytes; the original PUT URL is never shown again."""
    bucket = _bucket(runtime, scope, bucket_identifier)
    uploads.expire_overdue(runtime.db, bucket.bucket_id, upload_id)
    with runtime.db.read_session() as session:
        row = uploads.get_upload(session, bucket, upload_id)
    url = uploads.download_url(runtime.blobs, row) if return_presigned_urls else None
    return UploadResponse.model_validate(uploads.upload_payload(row, url)).model_dump(mode="json")


@router.delete("/{upload_id}", status_code=204, response_class=Response)
def delete_upload(
    bucket_identifier: str, upload_id: str, scope: ScopeDep, runtime: RuntimeDep, delete_s3_object: bool = True
) -> Response:
    bucket = _bucket(runtime, scope, bucket_identifier)
    uploads.expire_overdue(runtime.db, bucket.bucket_id, upload_id)
    with runtime.db.session() as session:
        uploads.cancel_upload(session, runtime.blobs, bucket, upload_id, delete_s3_object)
    return Response(status_code=204)


@router.post("/{upload_id}/confirm", response_model=ConfirmUploadResponse)
def confirm_upload_route(
    bucket_identifier: str,
    upload_id: str,
    scope: ScopeDep,
    runtime: RuntimeDep,
    var_async: AsyncFlag = False,
    policy: str | None = None,
    request: ConfirmUploadRequest | None = None,
) -> dict[str, Any]:
    request = request or ConfirmUploadRequest()
    bucket = _bucket(runtime, scope, bucket_identifier)
    claim = Claim(etag=request.etag, file_size_bytes=request.file_size_bytes, parts=request.parts)
    answer, queued = confirm_upload(runtime.jobs.context, scope, bucket, upload_id, claim, var_async)
    if queued:
        runtime.jobs.notify()
    if request.auto_submit_batch:
        answer.update(_auto_submit(runtime, scope, bucket, upload_id))
    return answer


def _auto_submit(runtime: Runtime, scope: NamespaceScope, bucket: Bucket, upload_id: str) -> dict[str, Any]:
    """auto_submit_batch: the new object's batch (`batch_id`, its `task_id`), made once per upload. Nothing
    while the confirm runs in the background, nor for a duplicate or an upload that makes no object."""
    with runtime.db.session() as session:
        row = uploads.get_upload(session, bucket, upload_id, for_update=True)
        if row.status != Status.COMPLETED or row.object_id is None or row.is_duplicate or row.skipped_unique_key:
            return {}
        made = process_upload(
            session, runtime.blobs, scope, get_bucket(session, scope, bucket.bucket_id), upload_id, row.object_id
        )
        session.commit()
    if made is None:
        return {"message": "Upload confirmed; no collection processes this bucket, so no batch was submitted."}
    runtime.wake_scheduler()
    return {"batch_id": made[0], "task_id": made[1]}


@router.post("/{upload_id}/multipart", response_model=MultipartResponse)
def open_multipart(
    bucket_identifier: str,
    upload_id: str,
    scope: ScopeDep,
    runtime: RuntimeDep,
    request: OpenMultipartRequest | None = None,
) -> dict[str, Any]:
    """Beyond the contract: open (or resume) a multipart upload and get a URL per part."""
    bucket = _bucket(runtime, scope, bucket_identifier)
    return upload_multipart.open_multipart(
        runtime.db, runtime.blobs, runtime.settings, bucket, upload_id, request or OpenMultipartRequest()
    )


@router.get("/{upload_id}/multipart", response_model=MultipartResponse)
def multipart_status(bucket_identifier: str, upload_id: str, scope: ScopeDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Beyond the contract: which parts of an open multipart upload storage holds."""
    bucket = _bucket(runtime, scope, bucket_identifier)
    return upload_multipart.multipart_status(runtime.db, runtime.blobs, bucket, upload_id)
