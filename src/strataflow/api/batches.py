"""Batches of a bucket: the tiered processing of its objects."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from strataflow.api.deps import DbDep, ReadDbDep, ScopeDep
from strataflow.schemas.batches import (
    AddObjectsToBatchRequest,
    BatchModel,
    CreateBatchRequest,
    ListBatchesRequest,
    ListBatchesResponse,
    PatchBatchRequest,
)
from strataflow.schemas.common import ERROR_RESPONSES, GenericDeleteResponse
from strataflow.services import batches as service
from strataflow.services.batch_view import batch_payload
from strataflow.services.buckets import get_bucket

router = APIRouter(prefix="/v1/buckets/{bucket_identifier}/batches", tags=["Bucket Batches"],
                   responses=ERROR_RESPONSES)


@router.post("", response_model=BatchModel)
def create_batch(bucket_identifier: str, request: CreateBatchRequest, scope: ScopeDep, session: DbDep,
                 skip_validation: bool = False) -> dict[str, Any]:
    bucket = get_bucket(session, scope, bucket_identifier)
    return batch_payload(session, service.create_batch(session, scope, bucket, request, skip_validation))


@router.post("/list", response_model=ListBatchesResponse)
def list_batches(bucket_identifier: str, scope: ScopeDep, session: ReadDbDep,
                 request: ListBatchesRequest | None = None) -> dict[str, Any]:
    bucket = get_bucket(session, scope, bucket_identifier)
    rows, total = service.list_batches(session, scope, bucket, request or ListBatchesRequest())
    return {"results": [batch_payload(session, b) for b in rows], "total_count": total}


@router.get("/{batch_id}", response_model=BatchModel)
def get_batch(bucket_identifier: str, batch_id: str, scope: ScopeDep, session: ReadDbDep) -> dict[str, Any]:
    bucket = get_bucket(session, scope, bucket_identifier)
    return batch_payload(session, service.get_batch(session, scope, bucket, batch_id))


@router.post("/{batch_id}/objects", response_model=BatchModel)
def add_objects(bucket_identifier: str, batch_id: str, request: AddObjectsToBatchRequest, scope: ScopeDep,
                session: DbDep, skip_validation: bool = False) -> dict[str, Any]:
    bucket = get_bucket(session, scope, bucket_identifier)
    batch = service.add_objects(session, scope, bucket, batch_id, request.object_ids, skip_validation)
    return batch_payload(session, batch)


@router.patch("/{batch_id}", response_model=BatchModel)
def patch_batch(bucket_identifier: str, batch_id: str, request: PatchBatchRequest, scope: ScopeDep,
                session: DbDep) -> dict[str, Any]:
    bucket = get_bucket(session, scope, bucket_identifier)
    return batch_payload(session, service.patch_batch(session, scope, bucket, batch_id, request.metadata))


@router.delete("/{batch_id}", response_model=GenericDeleteResponse)
def delete_batch(bucket_identifier: str, batch_id: str, scope: ScopeDep, session: DbDep) -> GenericDeleteResponse:
    bucket = get_bucket(session, scope, bucket_identifier)
    service.delete_batch(session, scope, bucket, batch_id)
    return GenericDeleteResponse(message=f"Batch {batch_id} deleted")
