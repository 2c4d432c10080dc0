"""Objects inside a bucket."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from sqlalchemy.orm import Session

from strataflow.api.deps import DbDep, PageDep, ReadDbDep, RuntimeDep, ScopeDep
from strataflow.engine.lifecycle.trigger import process_objects
from strataflow.schemas.common import ERROR_RESPONSES
from strataflow.schemas.objects import (
    CreateObjectRequest,
    CreateObjectsBatchRequest,
    CreateObjectsBatchResponse,
    ListObjectsRequest,
    ListObjectsResponse,
    ObjectAggregationRequest,
    ObjectAggregationResponse,
    ObjectResponse,
    PatchObjectRequest,
    UpdateObjectRequest,
)
from strataflow.services.buckets.crud import get_bucket
from strataflow.services.objects import aggregation
from strataflow.services.objects import crud as service
from strataflow.services.objects.view import object_view

router = APIRouter(prefix="/v1/buckets/{bucket_identifier}/objects", tags=["Bucket Objects"], responses=ERROR_RESPONSES)

Policy = Annotated[str | None, Query(pattern="^(insert|update|upsert)$")]


def _bucket(session: Session, scope: Any, identifier: str) -> Any:
    return get_bucket(session, scope, identifier)


def _process(session: Session, runtime: Any, scope: Any, bucket: Any, object_ids: list[str]) -> dict[str, Any]:
    """auto_process: submit the new objects as a batch; says which (extra keys are allowed here)."""
    if not object_ids:
        return {}
    task = process_objects(session, runtime.blobs, scope, bucket, object_ids)
    if task is None:
        return {"processing": "no collection processes this bucket"}
    runtime.wake_scheduler()
    return {"batch_id": (task.additional_data or {}).get("batch_id"), "task_id": task.task_id}


def _read_bucket(runtime: Any, scope: Any, identifier: str) -> Any:
    """The bucket, read in a session closed at once: creating objects may wait on URLs and the
    blob store, and must hold no transaction meanwhile (the service opens its own, short one)."""
    with runtime.db.read_session() as session:
        return _bucket(session, scope, identifier)


def _process_now(runtime: Any, scope: Any, bucket: Any, object_ids: list[str]) -> dict[str, Any]:
    if not object_ids:
        return {}
    with runtime.db.session() as session:
        return _process(session, runtime, scope, _bucket(session, scope, bucket.bucket_id), object_ids)


@router.post("", response_model=ObjectResponse)
def create_object(
    bucket_identifier: str,
    request: CreateObjectRequest,
    scope: ScopeDep,
    runtime: RuntimeDep,
    policy: Policy = None,
    auto_process: bool = False,
) -> dict[str, Any]:
    bucket = _read_bucket(runtime, scope, bucket_identifier)
    row = service.create_object(runtime.db, runtime.object_writer, bucket, request, policy)
    answer = object_view(row)
    if auto_process:
        answer.update(_process_now(runtime, scope, bucket, [row.object_id]))
    return answer


@router.post("/batch", response_model=CreateObjectsBatchResponse)
def create_objects_batch(
    bucket_identifier: str,
    request: CreateObjectsBatchRequest,
    scope: ScopeDep,
    runtime: RuntimeDep,
    auto_process: bool = False,
) -> dict[str, Any]:
    bucket = _read_bucket(runtime, scope, bucket_identifier)
    succeeded, failed = service.create_objects_batch(runtime.db, runtime.object_writer, bucket, request.objects)
    processing = _process_now(runtime, scope, bucket, [r.object_id for r in succeeded]) if auto_process else {}
    return {
        **processing,
        "succeeded": [object_view(r) for r in succeeded],
        "failed": failed,
        "total_requested": len(request.objects),
        "succeeded_count": len(succeeded),
        "failed_count": len(failed),
    }


@router.post("/list", response_model=ListObjectsResponse)
def list_objects(
    bucket_identifier: str,
    scope: ScopeDep,
    session: ReadDbDep,
    page: PageDep,
    runtime: RuntimeDep,
    request: ListObjectsRequest | None = None,
    return_presigned_urls: bool = False,
) -> dict[str, Any]:
    """`return_presigned_urls` (body or query string, as on the single object): each stored blob signed."""
    request = request or ListObjectsRequest()
    bucket = _bucket(session, scope, bucket_identifier)
    result = service.list_objects(session, scope, bucket, request, page)
    signer = runtime.blobs if request.return_presigned_urls or return_presigned_urls else None
    rows = [object_view(r, signer) for r in result.rows]
    if request.select:
        keep = set(request.select) | {"object_id", "bucket_id"}
        rows = [{k: v for k, v in row.items() if k in keep} for row in rows]
    by_status: dict[str, int] = {}
    for row in result.rows:
        by_status[row.status] = by_status.get(row.status, 0) + 1
    blob_total = sum(len(r.blobs) for r in result.rows)
    stats = {
        "total_objects": len(rows),
        "total_blobs": blob_total,
        "avg_blobs_per_object": blob_total / len(rows) if rows else 0.0,
        "objects_by_status": by_status,
    }
    return {"results": rows, "pagination": result.pagination, "stats": stats}


@router.get("", response_model=ListObjectsResponse)
def list_objects_get(
    bucket_identifier: str,
    scope: ScopeDep,
    session: ReadDbDep,
    page: PageDep,
    runtime: RuntimeDep,
    return_presigned_urls: bool = False,
) -> dict[str, Any]:
    return list_objects(bucket_identifier, scope, session, page, runtime, None, return_presigned_urls)


@router.post("/aggregate", response_model=ObjectAggregationResponse)
def aggregate_objects(
    bucket_identifier: str, request: ObjectAggregationRequest, scope: ScopeDep, session: ReadDbDep
) -> dict[str, Any]:
    bucket = _bucket(session, scope, bucket_identifier)
    return aggregation.aggregate_objects(session, bucket, request)


@router.get("/{object_identifier}", response_model=ObjectResponse)
def get_object(
    bucket_identifier: str,
    object_identifier: str,
    scope: ScopeDep,
    session: ReadDbDep,
    runtime: RuntimeDep,
    return_presigned_urls: bool = False,
) -> dict[str, Any]:
    bucket = _bucket(session, scope, bucket_identifier)
    row = service.get_object(session, scope, bucket, object_identifier)
    return object_view(row, runtime.blobs if return_presigned_urls else None)


@router.put("/{object_identifier}", response_model=ObjectResponse)
def update_object(
    bucket_identifier: str,
    object_identifier: str,
    request: UpdateObjectRequest,
    scope: ScopeDep,
    runtime: RuntimeDep,
) -> dict[str, Any]:
    with runtime.db.read_session() as session:  # closed before any blob is fetched or written
        bucket = _bucket(session, scope, bucket_identifier)
        row = service.get_object(session, scope, bucket, object_identifier)
    return object_view(service.update_object(runtime.db, runtime.object_writer, bucket, row, request))


@router.patch("/{object_identifier}", response_model=ObjectResponse)
def patch_object(
    bucket_identifier: str, object_identifier: str, request: PatchObjectRequest, scope: ScopeDep, session: DbDep
) -> dict[str, Any]:
    bucket = _bucket(session, scope, bucket_identifier)
    row = service.get_object(session, scope, bucket, object_identifier)
    return object_view(service.patch_object(session, bucket, row, request))


@router.delete("/{object_identifier}", status_code=204, response_class=Response)
def delete_object(
    bucket_identifier: str, object_identifier: str, scope: ScopeDep, session: DbDep, runtime: RuntimeDep
) -> Response:
    bucket = _bucket(session, scope, bucket_identifier)
    service.delete_object(
        session, runtime.blobs, runtime.index, service.get_object(session, scope, bucket, object_identifier)
    )
    return Response(status_code=204)
