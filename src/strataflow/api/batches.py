"""Batches of a bucket: the tiered processing of its objects."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from strataflow.api.deps import DbDep, ReadDbDep, RuntimeDep, ScopeDep
from strataflow.engine.lifecycle import cancel as cancellation
from strataflow.engine.lifecycle import retry as retries
from strataflow.engine.lifecycle import submit as submission
from strataflow.schemas.batches import (
    AddObjectsToBatchRequest,
    BatchModel,
    CreateBatchRequest,
    ListBatchesRequest,
    ListBatchesResponse,
    PatchBatchRequest,
    RetryBatchRequest,
    SubmitBatchRequest,
)
from strataflow.schemas.common import ERROR_RESPONSES, GenericDeleteResponse
from strataflow.schemas.tasks import TaskResponse
from strataflow.services.batches import audit
from strataflow.services.batches import crud as service
from strataflow.services.batches.view import batch_payload, tiers_of
from strataflow.services.buckets.crud import get_bucket
from strataflow.services.tenancy.tasks import task_payload

router = APIRouter(prefix="/v1/buckets/{bucket_identifier}/batches", tags=["Bucket Batches"], responses=ERROR_RESPONSES)


@router.post("", response_model=BatchModel)
def create_batch(
    bucket_identifier: str,
    request: CreateBatchRequest,
    scope: ScopeDep,
    session: DbDep,
    runtime: RuntimeDep,
    skip_validation: bool = False,
    auto_submit: bool = False,
) -> dict[str, Any]:
    bucket = get_bucket(session, scope, bucket_identifier)
    batch = service.create_batch(session, scope, bucket, request, skip_validation)
    if auto_submit:
        submission.submit_batch(session, runtime.blobs, scope, bucket, batch.batch_id)
        runtime.wake_scheduler()
    return batch_payload(session, batch)


@router.post("/list", response_model=ListBatchesResponse)
def list_batches(
    bucket_identifier: str, scope: ScopeDep, session: ReadDbDep, request: ListBatchesRequest | None = None
) -> dict[str, Any]:
    bucket = get_bucket(session, scope, bucket_identifier)
    rows, total = service.list_batches(session, scope, bucket, request or ListBatchesRequest())
    return {"results": [batch_payload(session, b) for b in rows], "total_count": total}


@router.get("/{batch_id}", response_model=BatchModel)
def get_batch(bucket_identifier: str, batch_id: str, scope: ScopeDep, session: ReadDbDep) -> dict[str, Any]:
    bucket = get_bucket(session, scope, bucket_identifier)
    return batch_payload(session, service.get_batch(session, scope, bucket, batch_id))


@router.post("/{batch_id}/objects", response_model=BatchModel)
def add_objects(
    bucket_identifier: str,
    batch_id: str,
    request: AddObjectsToBatchRequest,
    scope: ScopeDep,
    session: DbDep,
    skip_validation: bool = False,
) -> dict[str, Any]:
    bucket = get_bucket(session, scope, bucket_identifier)
    batch = service.add_objects(session, scope, bucket, batch_id, request.object_ids, skip_validation)
    return batch_payload(session, batch)


@router.patch("/{batch_id}", response_model=BatchModel)
def patch_batch(
    bucket_identifier: str, batch_id: str, request: PatchBatchRequest, scope: ScopeDep, session: DbDep
) -> dict[str, Any]:
    bucket = get_bucket(session, scope, bucket_identifier)
    return batch_payload(session, service.patch_batch(session, scope, bucket, batch_id, request.metadata))


@router.delete("/{batch_id}", response_model=GenericDeleteResponse)
def delete_batch(bucket_identifier: str, batch_id: str, scope: ScopeDep, session: DbDep) -> GenericDeleteResponse:
    bucket = get_bucket(session, scope, bucket_identifier)
    service.delete_batch(session, scope, bucket, batch_id)
    return GenericDeleteResponse(message=f"Batch {batch_id} deleted")


@router.post("/{batch_id}/submit", response_model=TaskResponse)
def submit_batch(
    bucket_identifier: str,
    batch_id: str,
    scope: ScopeDep,
    session: DbDep,
    runtime: RuntimeDep,
    request: SubmitBatchRequest | None = None,
    force: bool = False,
) -> dict[str, Any]:
    bucket = get_bucket(session, scope, bucket_identifier)
    task = submission.submit_batch(session, runtime.blobs, scope, bucket, batch_id)
    runtime.wake_scheduler()
    return task_payload(task)


@router.post("/{batch_id}/cancel", response_model=TaskResponse)
def cancel_batch(
    bucket_identifier: str, batch_id: str, scope: ScopeDep, session: DbDep, reason: str | None = None
) -> dict[str, Any]:
    bucket = get_bucket(session, scope, bucket_identifier)
    return task_payload(cancellation.cancel_batch(session, scope, bucket, batch_id, reason))


@router.post("/{batch_id}/retry")
def retry_batch(
    bucket_identifier: str,
    batch_id: str,
    scope: ScopeDep,
    session: DbDep,
    runtime: RuntimeDep,
    request: RetryBatchRequest | None = None,
) -> dict[str, Any]:
    bucket = get_bucket(session, scope, bucket_identifier)
    answer = retries.retry_batch(session, scope, bucket, batch_id, request or RetryBatchRequest())
    runtime.wake_scheduler()
    return answer


@router.get("/{batch_id}/failed-documents")
def failed_documents(
    bucket_identifier: str,
    batch_id: str,
    scope: ScopeDep,
    session: ReadDbDep,
    tier_num: Annotated[int | None, Query(ge=0)] = None,
    collection_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    bucket = get_bucket(session, scope, bucket_identifier)
    return retries.failed_documents(session, scope, bucket, batch_id, tier_num, collection_id, limit, offset)


@router.get("/{batch_id}/logs")
def batch_logs(
    bucket_identifier: str,
    batch_id: str,
    scope: ScopeDep,
    session: ReadDbDep,
    tier_num: Annotated[int | None, Query(ge=0)] = None,
) -> dict[str, Any]:
    bucket = get_bucket(session, scope, bucket_identifier)
    return retries.batch_logs(session, scope, bucket, batch_id, tier_num)


@router.get("/{batch_id}/audit")
def batch_audit(
    bucket_identifier: str, batch_id: str, scope: ScopeDep, session: ReadDbDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Per tier and collection: rows submitted, with documents, and why the others have none."""
    bucket = get_bucket(session, scope, bucket_identifier)
    batch = service.get_batch(session, scope, bucket, batch_id)
    return audit.batch_audit(session, runtime.index, batch, tiers_of(session, batch_id))
