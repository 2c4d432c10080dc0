"""Batches of a bucket: the tiered processing of its objects."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from strataflow.api.deps import DbDep, ReadDbDep, RuntimeDep, ScopeDep
from strataflow.engine.lifecycle import bulk, purge
from strataflow.engine.lifecycle import cancel as cancellation
from strataflow.engine.lifecycle import resubmit as resubmission
from strataflow.engine.lifecycle import retry as retries
from strataflow.engine.lifecycle import submit as submission
from strataflow.errors import BadRequestError
from strataflow.schemas.batches import (
    AddObjectsToBatchRequest,
    BatchModel,
    BulkSubmitRequest,
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
from strataflow.services.batches import diagnose as diagnosis
from strataflow.services.batches import estimate as estimation
from strataflow.services.batches.members import member_ids
from strataflow.services.batches.notify import check_notify_url
from strataflow.services.batches.queue import queue_context, queue_positions
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
    auto_submit: bool | None = None,
) -> dict[str, Any]:
    bucket = get_bucket(session, scope, bucket_identifier)
    batch = service.create_batch(session, scope, bucket, request, runtime.index, skip_validation)
    if request.submits(auto_submit):
        submission.submit_batch(session, runtime.blobs, scope, bucket, batch.batch_id)
        runtime.wake_scheduler()
    return batch_payload(session, batch)


@router.post("/list", response_model=ListBatchesResponse)
def list_batches(
    bucket_identifier: str, scope: ScopeDep, session: ReadDbDep, request: ListBatchesRequest | None = None
) -> dict[str, Any]:
    bucket = get_bucket(session, scope, bucket_identifier)
    rows, total, pagination = service.list_batches(session, scope, bucket, request or ListBatchesRequest())
    return {"results": [batch_payload(session, b) for b in rows], "total_count": total, "pagination": pagination}


@router.post("/bulk-submit")
def bulk_submit(
    bucket_identifier: str, request: BulkSubmitRequest, scope: ScopeDep, session: DbDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """The bucket's objects (all, or those matching `filters`) as batches of `chunk_size`, each submitted."""
    bucket = get_bucket(session, scope, bucket_identifier)
    answer = bulk.bulk_submit(session, runtime.blobs, runtime.index, scope, bucket, request)
    runtime.wake_scheduler()
    return answer


@router.post("/submit-all")
def submit_all(bucket_identifier: str, scope: ScopeDep, session: DbDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Submit every DRAFT batch of the bucket; each one that cannot be submitted is reported, not fatal."""
    bucket = get_bucket(session, scope, bucket_identifier)
    answer = bulk.submit_all_drafts(session, runtime.blobs, scope, bucket)
    runtime.wake_scheduler()
    return answer


@router.get("/{batch_id}", response_model=BatchModel)
def get_batch(bucket_identifier: str, batch_id: str, scope: ScopeDep, session: ReadDbDep) -> dict[str, Any]:
    bucket = get_bucket(session, scope, bucket_identifier)
    batch = service.get_batch(session, scope, bucket, batch_id)
    return {**batch_payload(session, batch), "queue_context": queue_context(session, batch)}


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
    options = request or SubmitBatchRequest()
    if options.webhook_url is not None:
        check_notify_url(runtime.outbound, options.webhook_url)
    bucket = get_bucket(session, scope, bucket_identifier)
    task = submission.submit_batch(
        session,
        runtime.blobs,
        scope,
        bucket,
        batch_id,
        claimed_scope=options.collection_ids,
        webhook_url=options.webhook_url,
    )
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


@router.post("/{batch_id}/resubmit")
def resubmit_batch(
    bucket_identifier: str,
    batch_id: str,
    scope: ScopeDep,
    session: DbDep,
    runtime: RuntimeDep,
    from_tier: Annotated[int | None, Query(ge=0)] = None,
    auto_submit: bool | None = None,
    trigger_processing: bool | None = None,
    request: Annotated[dict[str, Any] | None, Body()] = None,
) -> dict[str, Any]:
    """Run a finished batch again as a new run (new tasks; the old ones stay), from the start or from a tier."""
    body = request or {}
    submit = next(
        (
            v
            for v in (auto_submit, body.get("auto_submit"), trigger_processing, body.get("trigger_processing"))
            if v is not None
        ),
        True,
    )
    start = from_tier if from_tier is not None else body.get("from_tier")
    if start is not None and (not isinstance(start, int) or isinstance(start, bool) or start < 0):
        raise BadRequestError("from_tier must be a tier number (an integer from 0)", {"from_tier": start})
    bucket = get_bucket(session, scope, bucket_identifier)
    answer = resubmission.resubmit_batch(session, runtime.blobs, scope, bucket, batch_id, start, bool(submit))
    runtime.wake_scheduler()
    return answer


@router.delete("/{batch_id}/documents")
def delete_batch_documents(bucket_identifier: str, batch_id: str, scope: ScopeDep, session: DbDep) -> dict[str, Any]:
    """Remove every document the batch's objects have in its collections, as a task (poll its task_id)."""
    bucket = get_bucket(session, scope, bucket_identifier)
    task = purge.request_document_removal(session, scope, bucket, batch_id)
    return {**task_payload(task), "batch_id": batch_id, "message": "Removing the batch's documents; poll the task"}


@router.get("/{batch_id}/diagnose")
def diagnose_batch(bucket_identifier: str, batch_id: str, scope: ScopeDep, session: ReadDbDep) -> dict[str, Any]:
    """What is wrong with the batch and what to do: stalled tiers, missing blobs, failing extractors, mappings."""
    bucket = get_bucket(session, scope, bucket_identifier)
    batch = service.get_batch(session, scope, bucket, batch_id)
    position = queue_positions(session).get(batch_id)
    return diagnosis.diagnose(session, batch, tiers_of(session, batch_id), position)


@router.post("/{batch_id}/estimate-cost")
def estimate_cost(
    bucket_identifier: str, batch_id: str, scope: ScopeDep, session: ReadDbDep, runtime: RuntimeDep
) -> dict[str, Any]:
    """Rows, expected documents, CPU/GPU seconds and wall time from this deployment's measured rates."""
    bucket = get_bucket(session, scope, bucket_identifier)
    batch = service.get_batch(session, scope, bucket, batch_id)
    return estimation.estimate_batch(
        session, runtime.index, batch, member_ids(session, batch_id), runtime.settings.device
    )
