"""Buckets in the caller's namespace."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session

from strataflow.api.deps import DbDep, ReadDbDep, RuntimeDep, ScopeDep, paged
from strataflow.clock import isoformat
from strataflow.schemas.buckets import (
    BucketCreateRequest,
    BucketResponse,
    BucketUpdateRequest,
    ListBucketsRequest,
    ListBucketsResponse,
)
from strataflow.schemas.common import ERROR_RESPONSES, AsyncTaskAccepted
from strataflow.services.buckets import crud as service
from strataflow.store.pagination import PageRequest
from strataflow.store.tables import Bucket

DEFAULT_PAGE = PageRequest(limit=10)

router = APIRouter(prefix="/v1/buckets", tags=["Buckets"], responses=ERROR_RESPONSES)


def present(row: Bucket, stats: dict[str, int]) -> dict[str, Any]:
    count = stats["object_count"]
    return {
        "bucket_id": row.bucket_id,
        "bucket_name": row.bucket_name,
        "description": row.description,
        "bucket_schema": row.bucket_schema,
        "unique_key": row.unique_key,
        "metadata": row.metadata_,
        "object_count": count,
        "total_size_bytes": stats["total_size_bytes"],
        "created_at": isoformat(row.created_at),
        "updated_at": isoformat(row.updated_at),
        "last_upload_at": isoformat(row.last_upload_at),
        "status": row.status,
        "is_locked": row.is_locked,
        "storage_stats": {
            "total_size_bytes": stats["total_size_bytes"],
            "avg_size_bytes": stats["total_size_bytes"] // count if count else 0,
            "max_size_bytes": stats["max"],
            "min_size_bytes": stats["min"],
        },
    }


def present_one(session: Session, row: Bucket) -> dict[str, Any]:
    return present(row, service.bucket_stats(session, [row.bucket_id])[row.bucket_id])


@router.post("", response_model=BucketResponse)
def create_bucket(request: BucketCreateRequest, scope: ScopeDep, session: DbDep) -> dict[str, Any]:
    return present_one(session, service.create_bucket(session, scope, request))


@router.post("/list", response_model=ListBucketsResponse)
def list_buckets(scope: ScopeDep, session: ReadDbDep, request: ListBucketsRequest | None = None) -> dict[str, Any]:
    """Paging in the body (`limit`/`page_size`, `offset`/`page`; 10 a page unless given)."""
    request = request or ListBucketsRequest()
    result, total = service.list_buckets(session, scope, request, paged(DEFAULT_PAGE, request))
    stats = service.bucket_stats(session, [r.bucket_id for r in result.rows])
    results = [present(r, stats[r.bucket_id]) for r in result.rows]
    size = result.pagination["page_size"]
    result.pagination.update(total=total, total_pages=-(-total // size))
    return {
        "results": results,
        "total_count": total,
        "pagination": result.pagination,
        "stats": {
            "total_objects": sum(r["object_count"] for r in results),
            "total_size_bytes": sum(r["total_size_bytes"] for r in results),
        },
    }


@router.get("", response_model=ListBucketsResponse)
def list_buckets_get(scope: ScopeDep, session: ReadDbDep) -> dict[str, Any]:
    return list_buckets(scope, session, None)


@router.get("/{bucket_identifier}", response_model=BucketResponse)
def get_bucket(bucket_identifier: str, scope: ScopeDep, session: ReadDbDep) -> dict[str, Any]:
    return present_one(session, service.get_bucket(session, scope, bucket_identifier))


@router.put("/{bucket_identifier}", response_model=BucketResponse)
def update_bucket(
    bucket_identifier: str, request: BucketUpdateRequest, scope: ScopeDep, session: DbDep
) -> dict[str, Any]:
    return present_one(session, service.update_bucket(session, scope, bucket_identifier, request, replace=True))


@router.patch("/{bucket_identifier}", response_model=BucketResponse)
def patch_bucket(
    bucket_identifier: str, request: BucketUpdateRequest, scope: ScopeDep, session: DbDep
) -> dict[str, Any]:
    return present_one(session, service.update_bucket(session, scope, bucket_identifier, request, replace=False))


@router.delete("/{bucket_identifier}", response_model=AsyncTaskAccepted)
def delete_bucket(bucket_identifier: str, scope: ScopeDep, session: DbDep, runtime: RuntimeDep) -> dict[str, Any]:
    task = service.request_bucket_deletion(session, scope, bucket_identifier)
    runtime.jobs.notify()
    return {
        "task_id": task.task_id,
        "status": task.status,
        "bucket_id": (task.inputs or [{}])[0].get("bucket_id"),
        "message": "Bucket deletion started; poll the task for completion.",
    }
